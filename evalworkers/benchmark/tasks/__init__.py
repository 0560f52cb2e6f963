"""Task types, one module per family."""
