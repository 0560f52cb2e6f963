"""Declarative task parameters: one validator used by the generator, the specs file and the admin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SpecError

_MISSING = object()


@dataclass(frozen=True)
class Param:
    """One parameter: its kind (``int``, ``float``, ``bool``, ``choice``, ``depth``), default and bounds.

    ``omit_default``: for a parameter added after versions were published. While it holds its default it is
    left out of the cleaned params, so the params of those versions, and with them their spec hashes and the
    seeds of their samples, stay exactly what they were.
    """

    kind: str
    default: Any
    help: str = ""
    choices: Sequence[str] = ()
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    noun: str = "value"
    omit_default: bool = False

    def clean(self, field: str, value: Any) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise SpecError(field, "may not be null")
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise SpecError(field, f"unknown {self.noun} {value!r}; choose one of {', '.join(self.choices)}")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise SpecError(field, f"expected true or false, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(field, f"expected a number, got {value!r}")
        if self.kind == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise SpecError(field, f"expected an integer, got {value!r}")
                value = int(value)
        else:
            value = float(value)
            if value != value or value in (float("inf"), float("-inf")):
                raise SpecError(field, "must be a finite number")
            if value.is_integer() and self.kind == "depth":
                value = int(value)
        if self.minimum is not None and value < self.minimum:
            raise SpecError(field, f"must be at least {_fmt(self.minimum)}, got {_fmt(value)}")
        if self.maximum is not None and value > self.maximum:
            raise SpecError(field, f"must be at most {_fmt(self.maximum)}, got {_fmt(value)}")
        return value


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def clean_params(schema: dict[str, Param], params: Any, prefix: str = "params") -> dict[str, Any]:
    """Params with defaults filled in, keys sorted; unknown names and bad values raise SpecError."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise SpecError(prefix, "must be an object")
    for name in sorted(params):
        if name not in schema:
            known = ", ".join(sorted(schema)) or "none"
            raise SpecError(f"{prefix}.{name}", f"unknown parameter; known parameters: {known}")
    out: dict[str, Any] = {}
    for name in sorted(schema):
        param = schema[name]
        value = params.get(name, _MISSING)
        cleaned = param.default if value is _MISSING else param.clean(f"{prefix}.{name}", value)
        if param.omit_default and cleaned == param.default:
            continue
        out[name] = cleaned
    return out
