"""Everything a worker runs. benchmark/, backends/ and kv/ are plain Python (no Django)."""
