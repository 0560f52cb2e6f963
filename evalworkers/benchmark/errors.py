"""The one error type the benchmark raises for bad specs, so the admin can show it next to the right field."""

from __future__ import annotations


class SpecError(ValueError):
    """A task spec or request that cannot produce a sample; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
