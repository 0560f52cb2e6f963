"""Form fields for a benchmark version's spec, so that a curator never types JSON.

Each field reads and writes the same value the model stores (lengths as a list of token counts, budgets as
fractions, per-method budgets as a dict, task and version params as dicts) and refuses a bad value with the part
that is wrong named. The rules themselves stay where they live: the task registry (`validate_task`), the KV
registry (`check_budget`) and the model's `clean`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from evalworkers.benchmark import TASK_TYPES, SpecError, validate_task
from evalworkers.benchmark.params import Param
from evalworkers.kv import registry as kv_registry
from leaderboard.models.versions import LONGEST_LENGTH

_LENGTH = re.compile(r"^(\d+)\s*([kKmM]?)$")
_SPLIT = re.compile(r"[,\s;]+")


def _items(text: str) -> list[str]:
    return [item for item in _SPLIT.split(text.strip()) if item]


def length_text(n: int) -> str:
    return f"{n // (1 << 20)}M" if n % (1 << 20) == 0 else f"{n // 1024}K" if n % 1024 == 0 else str(n)


def parse_lengths(text: str) -> list[int]:
    """ "4096, 8K, 16K" -> [4096, 8192, 16384] (K = 1,024 tokens, M = 1,048,576); ValidationError names the item."""
    lengths = []
    for item in _items(text):
        match = _LENGTH.match(item.replace("_", ""))
        if match is None:
            raise ValidationError(f"{item!r} is not a token count; write whole numbers such as 4096 or 4K.")
        lengths.append(int(match[1]) * {"": 1, "k": 1024, "m": 1 << 20}[match[2].lower()])
    return lengths


class LengthsField(forms.Field):
    """Context lengths in tokens: positive, each once, ascending, at most `LONGEST_LENGTH`."""

    widget = forms.TextInput(attrs={"size": 60, "placeholder": "4K, 8K, 16K, 32K, 64K, 128K"})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(str(n) for n in value)
        return value

    def to_python(self, value: Any) -> list[int]:
        if isinstance(value, list):
            return value
        return parse_lengths(value or "")

    def validate(self, value: list[int]) -> None:
        if not value:
            raise ValidationError("Give at least one length in tokens, e.g. 4096, 8192.")
        if any(n <= 0 for n in value):
            raise ValidationError("Every length must be a positive number of tokens.")
        if value != sorted(set(value)):
            fixed = ", ".join(map(str, sorted(set(value))))
            raise ValidationError(f"List each length once, in ascending order: {fixed}.")
        if value[-1] > LONGEST_LENGTH:
            raise ValidationError(f"{value[-1]:,} tokens is past the longest length a version may have "
                                  f"({LONGEST_LENGTH:,}, 1M).")


def parse_fractions(text: str) -> list[float]:
    """ "1, 0.5, 25%" -> [1.0, 0.5, 0.25]; each must be a fraction in (0, 1]."""
    values = []
    for item in _items(text):
        try:
            value = float(item[:-1]) / 100 if item.endswith("%") else float(item)
        except ValueError:
            raise ValidationError(f"{item!r} is not a number; write fractions such as 0.5 or 50%.") from None
        if not (math.isfinite(value) and 0 < value <= 1):
            raise ValidationError(f"{item} is not a fraction of the KV cache kept in (0, 1].")
        values.append(value)
    return values


def _fractions_text(values: Any) -> str:
    return ", ".join(f"{float(b):g}" for b in values) if isinstance(values, list | tuple) else str(values or "")


class BudgetsField(forms.Field):
    """KV budgets offered to every compressing method: fractions of the full cache kept, in (0, 1]."""

    widget = forms.TextInput(attrs={"size": 40, "placeholder": "1.0, 0.5, 0.25, 0.1"})

    def prepare_value(self, value: Any) -> Any:
        return _fractions_text(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[float]:
        if isinstance(value, list):
            return value
        return parse_fractions(value or "")


def method_choices() -> list[tuple[str, str]]:
    return [(name, f"{m.label} ({name})") for name, m in kv_registry.METHODS.items()]


def compressing_methods() -> list[kv_registry.Method]:
    return [m for name, m in kv_registry.METHODS.items() if name != "full"]


def accepts_text(method: kv_registry.Method) -> str:
    """What the KV registry accepts for a method, in words: the budgets it honours and where it is offered."""
    rule = method.budgets
    points = ", ".join(f"{p:g}" for p in rule.points)
    return f"honours {rule.interval()}; offered at {points}" if points else f"honours {rule.interval()}"


class MethodBudgetsWidget(forms.Widget):
    """One input per compressing method of the KV registry, named `<name>__<method>`, with what it accepts."""

    def value_from_datadict(self, data: Mapping[str, Any], files: Any, name: str) -> dict[str, str]:
        return {m.name: data.get(f"{name}__{m.name}", "") for m in compressing_methods()}

    def value_omitted_from_data(self, data: Mapping[str, Any], files: Any, name: str) -> bool:
        return not any(f"{name}__{m.name}" in data for m in compressing_methods())

    def render(self, name: str, value: Any, attrs: dict | None = None, renderer: Any = None) -> SafeString:
        value = value if isinstance(value, dict) else {}
        rows = format_html_join(
            "", '<tr><th scope="row"><label for="id_{0}__{1}">{2}</label></th><td><input type="text" '
                'name="{0}__{1}" id="id_{0}__{1}" value="{3}" size="20"></td><td class="help">{4}</td></tr>',
            ((name, m.name, f"{m.label} ({m.name})", _fractions_text(value.get(m.name, "")), accepts_text(m))
             for m in compressing_methods()))
        return format_html('<table class="method-budgets"><thead><tr><th scope="col">method</th><th scope="col">'
                           'its own budgets (blank: the shared ones)</th><th scope="col">what the registry '
                           'accepts</th></tr></thead><tbody>{}</tbody></table>', rows)


class MethodBudgetsField(forms.Field):
    """{method: [budgets]} for methods that run at budgets of their own; each budget checked by the KV registry."""

    widget = MethodBudgetsWidget

    def to_python(self, value: Any) -> dict[str, list[float]]:
        if not isinstance(value, dict):
            return {}
        out: dict[str, list[float]] = {}
        errors = []
        for name, raw in value.items():
            if isinstance(raw, list):
                out[name] = [float(b) for b in raw]
                continue
            try:
                budgets = parse_fractions(raw or "")
            except ValidationError as exc:
                errors.append(f"{name}: {' '.join(exc.messages)}")
                continue
            for budget in budgets:
                try:
                    kv_registry.check_budget(name, budget)
                except kv_registry.MethodError as exc:
                    errors.append(f"{name}: {exc}")
            if budgets:
                out[name] = budgets
        if errors:
            raise ValidationError(errors)
        return out


# --- version options --------------------------------------------------------------------------------------

VERSION_OPTIONS: dict[str, Param] = {
    "query_aware": Param("bool", False, "compress the context and the question together (kvpress's default "
                                        "compresses the context only)"),
    "reasoning": Param("bool", False, "the version expects reasoning models: no answer prefix, more new tokens"),
    "reasoning_extra_tokens": Param("int", 1024, "new tokens each task adds for thinking, inside the length "
                                                 "(with reasoning)", minimum=1, maximum=65536),
    "answer_prefill": Param("bool", True, "send the answer prefix as an assistant prefill to chat models"),
    "system_prompt": Param("text", None, "a system prompt sent before every sample (blank: none)", nullable=True),
}


def _bool_text(value: Any) -> str:
    return "true" if value is True else "false" if value is False else ""


def _param_input(input_name: str, input_id: str, param: Param, value: Any) -> SafeString:
    """One input for a parameter of the task or version schema, by its kind."""
    if param.kind in ("choice", "bool"):
        options = list(param.choices) if param.kind == "choice" else ["true", "false"]
        shown = _bool_text(value) if param.kind == "bool" else value
        if param.nullable:
            options = ["", *options]
        return format_html('<select name="{}" id="{}">{}</select>', input_name, input_id, format_html_join(
            "", '<option value="{0}"{1}>{2}</option>',
            ((o, SafeString(" selected") if o == shown else "", o or "(none)") for o in options)))
    if param.kind == "text":
        return format_html('<input type="text" name="{}" id="{}" value="{}" size="60">', input_name, input_id,
                           value or "")
    bounds = "".join(
        f' {attr}="{_number_text(limit)}"' for attr, limit in (("min", param.minimum), ("max", param.maximum))
        if limit is not None)
    step = "1" if param.kind == "int" else "any"
    placeholder = "blank: none" if param.nullable else f"default {_number_text(param.default)}"
    return format_html('<input type="number" name="{}" id="{}" value="{}" step="{}" placeholder="{}"{}>',
                       input_name, input_id, "" if value is None else _number_text(value), step, placeholder,
                       SafeString(bounds))


def _number_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def convert(param: Param, field: str, raw: Any) -> Any:
    """A submitted string turned into the parameter's kind; the registry checks ranges and choices after."""
    if not isinstance(raw, str):
        return raw
    raw = raw.strip()
    if raw == "":
        if param.nullable:
            return None
        raise _Omit
    if param.kind == "bool":
        if raw not in ("true", "false"):
            raise ValidationError(f"{field}: choose true or false, not {raw!r}.")
        return raw == "true"
    if param.kind in ("choice", "text"):
        return raw
    try:
        number = float(raw)
    except ValueError:
        raise ValidationError(f"{field}: expected a number, got {raw!r}.") from None
    if param.kind == "int":
        if not number.is_integer():
            raise ValidationError(f"{field}: expected a whole number, got {raw}.")
        return int(number)
    return int(number) if param.kind == "depth" and number.is_integer() else number


class _Omit(Exception):
    """A blank input for a parameter that has a default: leave it out, so the default applies."""


def _schema_rows(prefix: str, schema: Mapping[str, Param], values: Mapping[str, Any]) -> SafeString:
    return format_html_join("", '<div class="param"><label for="{1}">{0}</label> {2} <span class="help">{3}</span>'
                                "</div>", (
        (name, f"id_{prefix}__{name}", _param_input(f"{prefix}__{name}", f"id_{prefix}__{name}", param,
                                                     values.get(name, param.default)), param.help)
        for name, param in schema.items()))


def _read_schema(data: Mapping[str, Any], prefix: str, schema: Mapping[str, Param]) -> dict[str, Any]:
    return {name: data.get(f"{prefix}__{name}") for name in schema if f"{prefix}__{name}" in data}


class VersionOptionsWidget(forms.Widget):
    def value_from_datadict(self, data: Mapping[str, Any], files: Any, name: str) -> dict[str, Any]:
        return _read_schema(data, name, VERSION_OPTIONS)

    def value_omitted_from_data(self, data: Mapping[str, Any], files: Any, name: str) -> bool:
        return not any(f"{name}__{option}" in data for option in VERSION_OPTIONS)

    def render(self, name: str, value: Any, attrs: dict | None = None, renderer: Any = None) -> SafeString:
        return format_html('<div class="version-options">{}</div>',
                           _schema_rows(name, VERSION_OPTIONS, value if isinstance(value, dict) else {}))


class VersionOptionsField(forms.Field):
    """The version's options (params) from their own inputs. Returns every known option with its value; the form
    keeps only those that differ from their defaults or were stored already, so a saved draft keeps its hash."""

    widget = VersionOptionsWidget

    def to_python(self, value: Any) -> dict[str, Any]:
        value = value if isinstance(value, dict) else {}
        out: dict[str, Any] = {}
        errors = []
        for name, param in VERSION_OPTIONS.items():
            try:
                converted = convert(param, f"options.{name}", value[name]) if name in value else param.default
            except _Omit:
                converted = param.default
            except ValidationError as exc:
                errors.extend(exc.messages)
                continue
            if converted is not None and param.kind != "text":
                try:
                    converted = param.clean(f"options.{name}", converted)
                except SpecError as exc:
                    errors.append(str(exc))
                    continue
            out[name] = converted
        if errors:
            raise ValidationError(errors)
        return out


def stored_options(cleaned: dict[str, Any], stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """What to store as a version's params: options that differ from their defaults or were stored before, plus
    any option these inputs do not know (kept as it was)."""
    stored = dict(stored or {})
    out = {k: v for k, v in stored.items() if k not in VERSION_OPTIONS}
    for name, value in cleaned.items():
        if name == "reasoning_extra_tokens" and not cleaned.get("reasoning") and name not in stored:
            continue
        if name in stored or value != VERSION_OPTIONS[name].default:
            out[name] = value
    return out


# --- task parameters --------------------------------------------------------------------------------------

class TaskParamsWidget(forms.Widget):
    """Inputs generated from each task type's parameter schema, one group per type; the group of the row's type is
    shown (static/js/task-params.js switches groups when the type changes). Inputs are named
    `<name>__<type>__<parameter>`; only the chosen type's are read."""

    current_type: str = ""

    def _type_input(self, name: str) -> str:
        return name[: -len("params")] + "task_type" if name.endswith("params") else "task_type"

    def value_from_datadict(self, data: Mapping[str, Any], files: Any, name: str) -> dict[str, Any]:
        task_type = data.get(self._type_input(name)) or ""
        if task_type not in TASK_TYPES:
            return {"type": task_type, "values": {}}
        return {"type": task_type, "values": _read_schema(data, f"{name}__{task_type}", TASK_TYPES[task_type].params)}

    def value_omitted_from_data(self, data: Mapping[str, Any], files: Any, name: str) -> bool:
        return False

    def render(self, name: str, value: Any, attrs: dict | None = None, renderer: Any = None) -> SafeString:
        if isinstance(value, dict) and "values" in value and "type" in value:
            current, values = value["type"], value["values"]
        else:
            current, values = self.current_type, value if isinstance(value, dict) else {}
        groups = format_html_join("", '<fieldset class="task-params-type" data-task-type="{0}"{1}><legend>{0}: {2}'
                                      "</legend>{3}</fieldset>", (
            (task_type, SafeString("") if task_type == current else SafeString(" hidden"), tt.description,
             _schema_rows(f"{name}__{task_type}", tt.params, values if task_type == current else {}))
            for task_type, tt in TASK_TYPES.items()))
        return format_html('<div class="task-params" data-params-of="{}">{}<p class="help task-params-none"{}>'
                           "Choose a task type to set its parameters.</p></div>", self._type_input(name), groups,
                           SafeString(" hidden") if current in TASK_TYPES else SafeString(""))


class TaskParamsField(forms.Field):
    """A task's params from the inputs of its type's schema, converted by kind; the task registry then fills in
    defaults and refuses bad values (`TaskSpec.clean`, shown on this field with the parameter named)."""

    widget = TaskParamsWidget

    def to_python(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            return {}
        if "values" not in value:
            return value
        task_type = value.get("type")
        if task_type not in TASK_TYPES:
            return {}
        schema = TASK_TYPES[task_type].params
        out: dict[str, Any] = {}
        errors = []
        for name, raw in value["values"].items():
            try:
                out[name] = convert(schema[name], f"params.{name}", raw)
            except _Omit:
                continue
            except ValidationError as exc:
                errors.extend(exc.messages)
        if errors:
            raise ValidationError(errors)
        return out

    def has_changed(self, initial: Any, data: Any) -> bool:
        raw = data.get("values", {}) if isinstance(data, dict) else {}
        task_type = data.get("type") if isinstance(data, dict) else None
        if task_type not in TASK_TYPES:
            return bool(raw)
        try:
            return validate_task(task_type, self.to_python(data)) != (initial or {})
        except (ValidationError, SpecError):
            return True


def params_text(params: Mapping[str, Any] | None) -> str:
    """Params in words for pages, by name: "depth_percent (none), haystack noise"; "defaults" when empty."""
    if not params:
        return "defaults"
    return ", ".join(f"{k} {'(none)' if v is None else _bool_text(v) or _number_text(v)}"
                     for k, v in sorted(params.items()))  # PostgreSQL's jsonb keeps its own key order
