"""`section.field=value` assignments onto a run configuration: the one way every command changes a
preset's settings (`oel loop --set consolidation.learning_rate=5e-4`, `oel config --set ...`).

A value is parsed by its field's declared type (int, float, bool, str, an optional value, a tuple
of strings written with commas); a wrong name or value is one clear OelError. The result is
validated like any configuration.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Sequence

from .config import LoopConfig
from .errors import OelError

TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def parse_assignment(text: str) -> tuple[list[str], str]:
    name, sep, value = text.partition("=")
    path = [p for p in name.strip().split(".") if p]
    if not sep or not path:
        raise OelError(f"'{text}' is not section.field=value (for example consolidation.learning_rate=5e-4)")
    return path, value.strip()


def parse_value(type_name: str, value: str, where: str):
    """`value` as the declared type `type_name` (a string: the configs use postponed annotations)."""
    options = [t.strip() for t in str(type_name).split("|")]
    if "None" in options and value.lower() in ("none", "null", ""):
        return None
    kind = next(t for t in options if t != "None")
    try:
        if kind == "bool":
            if value.lower() in TRUE:
                return True
            if value.lower() in FALSE:
                return False
            raise ValueError
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind.startswith("tuple"):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if kind == "str":
            return value
    except ValueError:
        raise OelError(f"{where} needs {kind_name(kind)}, not '{value}'") from None
    raise OelError(f"{where} cannot be set from the command line")


def kind_name(kind: str) -> str:
    return {"bool": "true or false", "int": "a whole number", "float": "a number"}.get(kind, kind)


def apply_overrides(config: LoopConfig, assignments: Sequence[str]) -> LoopConfig:
    for text in assignments:
        path, value = parse_assignment(text)
        config = _set(config, path, value, path)
    return config.validate()


def _set(obj, path: list[str], value: str, full: list[str]):
    known = {f.name: f for f in fields(obj)}
    where = ".".join(full)
    head = path[0]
    if head not in known:
        section = ".".join(full[: len(full) - len(path)]) or "the configuration"
        raise OelError(f"unknown setting '{where}': {section} has {', '.join(sorted(known))}")
    current = getattr(obj, head)
    if len(path) == 1:
        if is_dataclass(current):
            raise OelError(f"'{where}' is a section: set one of its fields, e.g. {where}.{fields(current)[0].name}=...")
        return replace(obj, **{head: parse_value(known[head].type, value, where)})
    if not is_dataclass(current):
        raise OelError(f"'{'.'.join(full[: len(full) - len(path) + 1])}' is not a section")
    return replace(obj, **{head: _set(current, path[1:], value, full)})


def changed_sections(assignments: Sequence[str]) -> dict[str, dict[str, str]]:
    """{section: {field: raw value}} of the assignments (sections of a run that may still change)."""
    out: dict[str, dict[str, str]] = {}
    for text in assignments:
        path, value = parse_assignment(text)
        if len(path) >= 2:
            out.setdefault(path[0], {})[".".join(path[1:])] = value
        else:
            out.setdefault("", {})[path[0]] = value
    return out


__all__ = ["apply_overrides", "changed_sections", "parse_assignment", "parse_value"]
