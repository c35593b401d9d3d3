"""The pre-check that lets valid input skip jsonschema: never True where jsonschema says invalid."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from fleet import config, ops
from fleet.schemacheck import compile_check, is_complete

SCHEMAS: dict[str, dict[str, Any]] = {
    "config": config.SCHEMA,
    **{f"op:{name}": op.input_schema for name, op in ops.REGISTRY.items()},
}

# JSON-like values, with the edge cases the keywords care about: bools vs ints, 1.0 vs 1, NaN,
# infinities, duplicates, odd keys, strings with newlines, and the names fleet's schemas use.
KEYS = st.sampled_from(["agent", "agents", "holder", "token", "ttl", "wait", "text", "force", "lines",
                        "timeout", "request_id", "fleet", "defaults", "home", "cwd", "name", "state_dir",
                        "task", "to", "skills", "write_paths", "assignment", "assignments", "since", "queue",
                        "codex", "args", "env", "role", "sandbox", "model", "mila", "Mila", "a-1", "x"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 2**54), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 1.0, 0.5, 30, 300, 301, 86400, 86401, 2**53, "5", "", "mila", "mila\n", "a" * 33,
                     "cli:alice", "two words", "explorer", "worker", "read-only", "x" * 129]),
    st.text(max_size=40),
)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.one_of(KEYS, st.text(max_size=8)), inner, max_size=6)),
    max_leaves=25)


#: A valid instance of every schema, using every property: the property test changes one thing in it.
VALID: dict[str, Any] = {
    "config": {
        "fleet": {"name": "demo", "state_dir": "st", "assignment_template": "prompt.md"},
        "defaults": {"codex": "codex", "args": ["-c", "x=1"], "env": {"A_B": "1"}, "role": "worker",
                     "sandbox": "read-only", "model": "m"},
        "agents": {"mila": {"home": "h/mila", "cwd": ".", "env": {"K": "v"}, "args": [], "role": "explorer"},
                   "ana-2": {"home": "h", "cwd": "w", "codex": "/opt/codex", "sandbox": "workspace-write"}},
    },
    "op:fleet_status": {"agents": ["mila", "ana-2"]},
    "op:agent_start": {"agents": ["mila"], "holder": "lead:1", "token": 3, "timeout": 30},
    "op:agent_stop": {"agents": ["mila"], "holder": "lead:1", "token": 3},
    "op:agent_send": {"agent": "mila", "text": "hi", "request_id": "r-1", "timeout": 10.5, "holder": "lead",
                      "token": 1},
    "op:agent_interrupt": {"agent": "mila", "holder": "lead", "token": 2},
    "op:agent_tail": {"agent": "mila", "lines": 40},
    "op:fleet_doctor": {},
    "op:store_init": {},
    "op:store_status": {},
    "op:agent_claim": {"agent": "mila", "holder": "cli:alice", "token": 4, "ttl": 60, "wait": 0.5},
    "op:agent_release": {"agent": "mila", "holder": "cli:alice", "token": 4, "force": False},
    "op:fleet_leases": {},
    "op:fleet_hosts": {},
    "op:lease_repair": {"agent": "mila", "holder": "ops"},
    "op:ledger_repair": {"holder": "ops"},
    "op:skill_list": {"agents": ["mila"]},
    "op:assignment_create": {"task": "Write docs", "to": "mila", "skills": ["pdf", "plugin:x"],
                             "write_paths": ["docs/"], "read_paths": ["src"], "checks": ["pytest -q"],
                             "deadline": "1h30m", "queue": True, "request_id": "job-1", "holder": "lead",
                             "token": 2},
    "op:assignment_list": {"open_only": True, "agent": "mila", "limit": 50},
    "op:assignment_get": {"assignment": "as-01JABCDEFGHJKMNPQRSTVWXYZ0"},
    "op:assignment_wait": {"assignments": ["as-01JABCDEFGHJKMNPQRSTVWXYZ0", "as-01JABCDEFGHJKMNPQRSTVWXYZ1"],
                           "timeout": 25},
    "op:assignment_cancel": {"assignment": "as-01JABCDEFGHJKMNPQRSTVWXYZ0", "interrupt": True, "holder": "lead"},
    "op:fleet_events": {"since": 10, "limit": 200, "assignment": "as-01JABCDEFGHJKMNPQRSTVWXYZ0"},
    "op:fleet_usage": {"agent": "mila", "since": "1d"},
    "op:fleet_dispatch": {},
    "op:assignment_diff": {"assignment": "as-01JABCDEFGHJKMNPQRSTVWXYZ0", "max_bytes": 4096},
    "op:assignment_merge": {"assignments": ["as-01JABCDEFGHJKMNPQRSTVWXYZ0"], "into": "main", "holder": "lead"},
    "op:worktree_list": {},
    "op:worktree_prune": {"force": False, "holder": "lead"},
    "op:fleet_install": {"codex_home": "~/.codex-alice", "uninstall": False},
    "op:watchdog_tick": {"dry_run": True},
    "op:watchdog_status": {"ticks": 5},
    "op:agent_approve": {"agent": "mila", "holder": "lead", "token": 2},
    "op:agent_deny": {"agent": "mila", "message": "not here", "holder": "lead", "token": 2},
}
#: Values at and around the bounds and patterns fleet's schemas use.
EDGES = st.one_of(
    st.sampled_from([None, True, False, 0, 1, 1.0, 0.5, -1, 30, 300, 301, 600, 601, 2000, 2001, 86400, 86401,
                     2**53, 2**53 + 1, float("nan"), float("inf"), "", "5", "mila", "Mila", "mila\n", "-x",
                     "a_b", "two words", "cli:alice", "x" * 128, "x" * 129, [], {}, ["mila"], ["mila", "mila"]]),
    st.builds(str.__mul__, st.sampled_from("a-Z"), st.sampled_from([31, 32, 33, 64, 65, 4096, 4097, 32000, 32001])),
    st.builds(lambda n: [f"n{i}" for i in range(n)], st.sampled_from([64, 65, 100, 101])),
    st.builds(lambda n: {f"K{i}": "v" for i in range(n)}, st.sampled_from([128, 129])),
    JSON,
)


STR_VALUES: list[Any] = ["", "5", "Mila", "mila\n", "-x", "a_b", "two words", "A_B", "K-1", *(
    c * n for c in "a-" for n in (31, 32, 33, 64, 65, 128, 129, 4096, 4097, 32000, 32001))]
NUM_VALUES: list[Any] = [-1, 0, 0.0, 0.5, 1, 1.0, 1.5, 30.5, 300, 301, 600, 601, 2000, 2001, 86400, 86401,
                         2**53, 2**53 + 1, float("nan"), float("inf"), True, "5", None]
LIST_VALUES: list[Any] = [[], ["mila", "mila"], [1], ["Mila"], [["a"]], "mila",
                          *([f"n{i}" for i in range(n)] for n in (64, 65, 100, 101))]
DICT_VALUES: list[Any] = [{}, {"Mila": "v"}, {"a b": "v"}, {"K": 1}, [], *(
    {f"K{i}": "v" for i in range(n)} for n in (128, 129))]
NEW_KEYS: list[str] = ["extra", "Mila", "a b", "K-1", "-x", "mila\n", "agent", "token", "home", "env"]
STR_EDGES = st.sampled_from(STR_VALUES)
NUM_EDGES = st.sampled_from(NUM_VALUES)
LIST_EDGES = st.sampled_from(LIST_VALUES)
DICT_EDGES = st.sampled_from(DICT_VALUES)


def edges_like(value: Any) -> st.SearchStrategy[Any]:
    """Edge values of the same JSON type as `value` three times in four, anything the fourth."""
    if isinstance(value, str):
        own: st.SearchStrategy[Any] = STR_EDGES
    elif isinstance(value, bool):
        own = st.sampled_from([0, 1, "true", None])
    elif isinstance(value, int | float):
        own = NUM_EDGES
    elif isinstance(value, list):
        own = LIST_EDGES
    elif isinstance(value, dict):
        own = DICT_EDGES
    else:
        own = EDGES
    return st.one_of(own, own, own, EDGES)


def values_like(value: Any) -> list[Any]:
    if isinstance(value, str):
        return STR_VALUES
    if isinstance(value, bool):
        return [0, 1, "true", None]
    if isinstance(value, int | float):
        return NUM_VALUES
    return LIST_VALUES if isinstance(value, list) else DICT_VALUES


def single_changes(base: Any) -> list[Any]:
    """Every instance one step from `base`: each value replaced by each edge value of its kind,
    each key or item dropped, each dict given or renamed to each new key, each list given one more."""
    out = []
    for path in _paths(base):
        target = _get(base, path)
        out += [_replace(base, path, v) for v in values_like(target)]
        if path:
            out.append(_drop(base, path))
        if isinstance(target, dict):
            out += [_replace(base, path, {**target, k: "v"}) for k in NEW_KEYS]
            out += [_replace(base, path, {**{k: v for k, v in target.items() if k != old}, new: target[old]})
                    for old in target for new in NEW_KEYS]
        if isinstance(target, list):
            out += [_replace(base, path, [*target, v]) for v in [*target[:1], 1, "Mila"]]
    return out


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*here, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*here, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    return [_replace(v, rest, new) if i == head else v for i, v in enumerate(value)]


def _drop(value: Any, path: tuple[Any, ...]) -> Any:
    parent = _get(value, path[:-1])
    if isinstance(parent, dict):
        smaller: Any = {k: v for k, v in parent.items() if k != path[-1]}
    else:
        smaller = [v for i, v in enumerate(parent) if i != path[-1]]
    return _replace(value, path[:-1], smaller)


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def one_change(draw: st.DrawFn, base: Any) -> Any:
    """`base` with one thing changed: a value replaced, a key or item removed, a key added or renamed."""
    path = draw(st.sampled_from(_paths(base)))
    how = draw(st.sampled_from(["replace", "replace", "drop", "add", "rename"]))
    if how == "drop" and path:
        return _drop(base, path)
    target = _get(base, path)
    new_key = st.one_of(KEYS, st.sampled_from(["extra", "Mila", "a b", "K-1", "-x", "mila\n"]))
    if how == "add" and isinstance(target, dict):
        return _replace(base, path, {**target, draw(new_key): draw(EDGES)})
    if how == "add" and isinstance(target, list):
        return _replace(base, path, [*target, draw(st.one_of(EDGES, st.sampled_from(target or [1])))])
    if how == "rename" and isinstance(target, dict) and target:
        old, key = draw(st.sampled_from(sorted(target))), draw(new_key)
        return _replace(base, path, {**{k: v for k, v in target.items() if k != old}, key: target[old]})
    return _replace(base, path, draw(edges_like(target)))


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_schema_fleet_uses_is_valid_and_fully_prechecked(name: str) -> None:
    Draft202012Validator.check_schema(SCHEMAS[name])
    assert Draft202012Validator(SCHEMAS[name]).is_valid(VALID[name])
    assert compile_check(SCHEMAS[name])(VALID[name]) is True
    assert is_complete(SCHEMAS[name]), f"{name}: a keyword the pre-check does not know sends valid input to jsonschema"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_precheck_never_passes_what_jsonschema_refuses(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name]
    instance = data.draw(st.one_of(one_change(VALID[name]), JSON))
    if compile_check(schema)(instance):
        assert Draft202012Validator(schema).is_valid(instance), instance


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_precheck_passes_no_single_change_jsonschema_refuses(name: str) -> None:
    schema, check = SCHEMAS[name], compile_check(SCHEMAS[name])
    validator = Draft202012Validator(schema)
    wrong = [i for i in single_changes(VALID[name]) if check(i) and not validator.is_valid(i)]
    assert not wrong, repr(wrong[0])[:300]


@settings(max_examples=300, deadline=None)
@given(instance=JSON)
def test_an_unknown_keyword_makes_the_precheck_defer(instance: Any) -> None:
    assert compile_check({"type": "object", "not": {"required": ["a"]}})(instance) is False


@pytest.mark.parametrize(("name", "args"), [
    ("fleet_status", {}),
    ("fleet_status", {"agents": ["mila", "ana-2"]}),
    ("agent_claim", {"agent": "mila", "holder": "cli:alice", "ttl": 60, "wait": 0.5, "token": 3}),
    ("agent_release", {"agent": "mila", "force": True}),
    ("agent_send", {"agent": "mila", "text": "hi", "request_id": "r-1", "timeout": 10.0}),
    ("agent_tail", {"agent": "mila", "lines": 40}),
    ("agent_start", {"agents": ["mila"], "timeout": 30, "holder": "lead", "token": 1}),
])
def test_ordinary_valid_calls_pass_without_jsonschema(name: str, args: dict[str, Any]) -> None:
    assert ops.get(name).precheck(args) is True


def test_a_typical_config_passes_without_jsonschema() -> None:
    raw = {"fleet": {"name": "demo", "state_dir": "st"},
           "defaults": {"codex": "codex", "args": ["-c", "x=1"], "env": {"A_B": "1"}, "role": "worker"},
           "agents": {"mila": {"home": "h/mila", "cwd": ".", "sandbox": "read-only", "model": "m"}}}
    assert compile_check(config.SCHEMA)(raw) is True


@pytest.mark.parametrize(("schema", "instance"), [
    ({"type": "integer"}, True),
    ({"type": "integer"}, 1.5),
    ({"type": "number", "minimum": 1}, float("nan")),
    ({"type": "array", "uniqueItems": True}, [1, True]),
    ({"enum": ["a"]}, ["a"]),
    ({"type": "string", "pattern": "^a$"}, "b"),
    ({"type": "object", "additionalProperties": False, "properties": {"a": {}}}, {"b": 1}),
])
def test_instances_at_the_edges_are_left_to_jsonschema(schema: dict[str, Any], instance: Any) -> None:
    assert compile_check(schema)(instance) is False
