"""A fast pre-check for fleet's own JSON Schemas, so a valid call never pays for importing jsonschema.

`jsonschema` stays the one authority on validity and on error messages; importing it costs ~60 ms,
more than half of a CLI call's budget. `compile_check(schema)` turns the keywords fleet's schemas use
(the config file, the operations' inputs) into a plain Python predicate with one contract:

    check(instance) is True  =>  jsonschema (Draft 2020-12) finds the instance valid.

It is sound, not complete: when it returns False the caller asks jsonschema, which decides and
explains. So a schema keyword the pre-check does not know makes it return False for everything
(never True by omission), and wherever the exact Draft 2020-12 semantics would take more than a few
lines (uniqueness of non-strings, enums of non-strings) it declines in the same way. A property
test (tests/test_registry_schemacheck.py) checks the contract against jsonschema on generated instances.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Final

Check = Callable[[Any], bool]

#: Keywords that never affect validity.
_ANNOTATIONS: Final = frozenset({"$schema", "$id", "title", "description", "default", "examples", "$comment"})
#: Keywords the pre-check evaluates itself.
_KNOWN: Final = frozenset({
    "type", "enum", "properties", "required", "additionalProperties", "propertyNames", "minProperties",
    "maxProperties", "items", "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern",
    "minimum", "maximum",
})


def _never(_: Any) -> bool:
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    # Draft 2020-12: a number with a zero fractional part is an integer (1.0 is); a bool is not.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: Final[dict[str, Check]] = {
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def compile_check(schema: Any) -> Check:
    """A predicate that is True only for instances jsonschema finds valid against `schema`."""
    if schema is True or schema == {}:
        return lambda _: True
    if not isinstance(schema, dict) or set(schema) - _KNOWN - _ANNOTATIONS:
        return _never  # `false`, or a keyword this module does not evaluate: let jsonschema decide
    checks: list[Check] = []
    kind = schema.get("type")
    if kind is not None:
        names = [kind] if isinstance(kind, str) else kind
        if not isinstance(names, list) or any(n not in _TYPES for n in names):
            return _never
        tests = [_TYPES[n] for n in names]
        checks.append(tests[0] if len(tests) == 1 else lambda v: any(t(v) for t in tests))
    if "enum" in schema:
        values = schema["enum"]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return _never
        allowed = frozenset(values)
        checks.append(lambda v: isinstance(v, str) and v in allowed)
    checks += _string_checks(schema) + _number_checks(schema) + _array_checks(schema) + _object_checks(schema)
    if any(c is _never for c in checks):
        return _never
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(c(v) for c in checks)


def _string_checks(schema: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    if "minLength" in schema:
        low = schema["minLength"]
        out.append(lambda v: not isinstance(v, str) or len(v) >= low)
    if "maxLength" in schema:
        high = schema["maxLength"]
        out.append(lambda v: not isinstance(v, str) or len(v) <= high)
    if "pattern" in schema:
        try:
            search = re.compile(schema["pattern"]).search  # jsonschema also uses re.search
        except (re.error, TypeError):
            return [_never]
        out.append(lambda v: not isinstance(v, str) or search(v) is not None)
    return out


def _number_checks(schema: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    low, high = schema.get("minimum"), schema.get("maximum")
    for bound in (low, high):
        if bound is not None and not _is_number(bound):
            return [_never]
    # A NaN or an infinity is left to jsonschema's own comparisons.
    if low is not None:
        out.append(lambda v: not _is_number(v) or (math.isfinite(v) and v >= low))
    if high is not None:
        out.append(lambda v: not _is_number(v) or (math.isfinite(v) and v <= high))
    return out


def _array_checks(schema: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    if "items" in schema:
        item = compile_check(schema["items"])
        out.append(lambda v: not isinstance(v, list) or all(item(x) for x in v))
    if "minItems" in schema:
        low = schema["minItems"]
        out.append(lambda v: not isinstance(v, list) or len(v) >= low)
    if "maxItems" in schema:
        high = schema["maxItems"]
        out.append(lambda v: not isinstance(v, list) or len(v) <= high)
    if schema.get("uniqueItems") is True:
        # Exact only for strings; jsonschema's equality for other values (1 vs True vs 1.0) is subtler.
        out.append(lambda v: not isinstance(v, list)
                   or (all(isinstance(x, str) for x in v) and len(set(v)) == len(v)))
    elif schema.get("uniqueItems", False) is not False:
        return [_never]
    return out


def _object_checks(schema: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        return [_never]
    compiled = {k: compile_check(s) for k, s in props.items()}
    if compiled:
        out.append(lambda v: not isinstance(v, dict)
                   or all(check(v[k]) for k, check in compiled.items() if k in v))
    required = schema.get("required", [])
    if required:
        out.append(lambda v: not isinstance(v, dict) or all(k in v for k in required))
    extra = schema.get("additionalProperties", True)
    if extra is False:
        out.append(lambda v: not isinstance(v, dict) or all(k in compiled for k in v))
    elif extra is not True:
        other = compile_check(extra)
        out.append(lambda v: not isinstance(v, dict) or all(other(x) for k, x in v.items() if k not in compiled))
    if "propertyNames" in schema:
        name_ok = compile_check(schema["propertyNames"])
        out.append(lambda v: not isinstance(v, dict) or all(name_ok(k) for k in v))
    if "minProperties" in schema:
        low = schema["minProperties"]
        out.append(lambda v: not isinstance(v, dict) or len(v) >= low)
    if "maxProperties" in schema:
        high = schema["maxProperties"]
        out.append(lambda v: not isinstance(v, dict) or len(v) <= high)
    return out


def non_finite(instance: Any, path: str = "$") -> tuple[str, float] | None:
    """The JSON path and value of the first NaN or infinity anywhere in `instance`, or None.

    JSON has no such numbers, but Python's `json` (and the MCP SDK's parser) read `NaN` and
    `Infinity`, TOML has `nan` and `inf`, and Draft 2020-12 judges them by comparisons that NaN always
    passes (`minimum`, `maximum`). So the registry refuses them before any schema is consulted."""
    if isinstance(instance, float) and not math.isfinite(instance):
        return path, instance
    children: Any = ()
    if isinstance(instance, dict):
        children = ((f"{path}.{k}", v) for k, v in instance.items())
    elif isinstance(instance, list | tuple):
        children = ((f"{path}[{i}]", v) for i, v in enumerate(instance))
    for where, value in children:
        found = non_finite(value, where)
        if found is not None:
            return found
    return None


def is_complete(schema: Any) -> bool:
    """True when every keyword in `schema` (recursively) is one the pre-check evaluates, so a valid
    instance passes without jsonschema. Tests assert it for fleet's schemas; nothing else needs it."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict) or set(schema) - _KNOWN - _ANNOTATIONS:
        return False
    subs = [*schema.get("properties", {}).values(), schema.get("items", True),
            schema.get("additionalProperties", True), schema.get("propertyNames", True)]
    enum_ok = all(isinstance(v, str) for v in schema.get("enum", []))
    return enum_ok and all(is_complete(s) for s in subs)
