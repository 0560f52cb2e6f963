"""The shared attention/KV optimisation backend: method registry, compressed generation, measurement.

No Django here; torch and kvpress are imported by the modules that need them, so the web process never loads them.
"""
