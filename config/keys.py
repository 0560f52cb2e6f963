"""Print a fresh FIELD_ENCRYPTION_KEY: `python -m config.keys`."""

from config.env import new_fernet_key

if __name__ == "__main__":
    print(new_fernet_key())
