"""fleet's one vocabulary (`fleet.vocab`): it stays a leaf, and the modules that used to keep their own
copies of its words now agree with it."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

from hypothesis import given
from hypothesis import strategies as st

from fleet import vocab
from fleet.agents import state
from fleet.hooks import receiver
from fleet.leases.rules import HOLDER_RE, is_reserved_holder
from fleet.watchdog.decide import lease_kind
from fleet.work.lifecycle import ASSIGNMENT_ID_PATTERN

FLEET = Path(vocab.__file__).resolve().parent
ROOT = FLEET.parent


def _loaded_after(module: str) -> list[str]:
    """The fleet modules a fresh `python -S` loads for `import <module>`, with the package found after
    the stdlib on the path, the way the hook receiver finds it."""
    probe = (f"import json, sys; sys.path.append({str(ROOT)!r}); import {module}; "
             "print(json.dumps(sorted(m for m in sys.modules if m == 'fleet' or m.startswith('fleet.'))))")
    out = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def test_vocab_imports_nothing_from_fleet_and_loads_under_python_dash_s() -> None:
    assert _loaded_after("fleet.vocab") == ["fleet", "fleet.vocab"]
    tree = ast.parse((FLEET / "vocab.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported <= {"__future__", "typing"}


def test_the_config_that_owns_the_watchdog_table_loads_nothing_from_the_watchdog() -> None:
    """The old `config.py` <-> `watchdog/policy.py` circle: the agent-name patterns live in vocab, and
    the `[watchdog]` table is `fleet.config.watchdog`."""
    assert not [m for m in _loaded_after("fleet.config") if m.startswith("fleet.watchdog")]


def test_the_hook_receiver_writes_the_journal_kinds_the_vocabulary_names() -> None:
    assert receiver.HOOK_EVENTS == vocab.HOOK_EVENT_KINDS
    codex_kinds = set(vocab.HOOK_EVENT_KINDS.values())
    assert not codex_kinds & vocab.FLEET_EVENTS  # a hook is never mistaken for fleet's own record
    assert codex_kinds - {"session_started"} <= vocab.WORK_EVENTS


def test_agent_states_are_declared_once() -> None:
    assert get_args(vocab.AgentState) == vocab.AGENT_STATES
    assert state.STATES is vocab.AGENT_STATES


def test_the_turn_end_sets_say_what_they_hold() -> None:
    assert set(vocab.TURN_END_OUTCOME) == vocab.TURN_END_EVENTS
    assert set(vocab.TURN_END_OUTCOME.values()) == set(get_args(vocab.TurnOutcome))
    every_end = vocab.TURN_ENDS_WITH_MESSAGE | vocab.TURN_ENDS_WITHOUT_MESSAGE
    assert every_end >= vocab.TURN_END_EVENTS
    assert not vocab.TURN_ENDS_WITH_MESSAGE & vocab.TURN_ENDS_WITHOUT_MESSAGE
    assert not every_end & vocab.FLEET_EVENTS


def test_fleet_builds_its_own_holder_names_only_in_the_vocabulary() -> None:
    """`assignment:<id>` and `watchdog:policy` were spelled out in three modules each; a copy that
    drifts would make the watchdog treat an assignment's own lease as someone else's."""
    spelled = re.compile(r"""f?["']assignment:\{|["']watchdog:policy["']""")
    copies = [str(path.relative_to(ROOT)) for path in sorted(FLEET.rglob("*.py"))
              if path.name != "vocab.py" and spelled.search(path.read_text())]
    assert copies == []


@given(st.from_regex(ASSIGNMENT_ID_PATTERN.replace("(?!\\n)$", r"\Z"), fullmatch=True))
def test_an_assignments_holder_is_fleets_own_and_valid_where_fleet_passes_it(assignment_id: str) -> None:
    holder = vocab.assignment_holder(assignment_id)
    assert is_reserved_holder(holder)
    assert HOLDER_RE.fullmatch(holder)
    assert lease_kind(holder, watchdog_holder=vocab.WATCHDOG_HOLDER, assignment_holders=[holder]) == "assignment"
    assert lease_kind(holder, watchdog_holder=vocab.WATCHDOG_HOLDER) == "other"


def test_the_watchdogs_holders_are_reserved() -> None:
    for holder in (vocab.WATCHDOG_HOLDER, vocab.WATCHDOG_POLICY_HOLDER):
        assert is_reserved_holder(holder)
        assert HOLDER_RE.fullmatch(holder)
        assert lease_kind(holder, watchdog_holder=vocab.WATCHDOG_HOLDER) == (
            "watchdog" if holder == vocab.WATCHDOG_HOLDER else "other")


def test_routings_busy_and_down_sets_are_agent_states_that_do_not_overlap() -> None:
    assert set(vocab.AGENT_STATES) >= vocab.BUSY_AGENT_STATES
    assert set(vocab.AGENT_STATES) >= vocab.DOWN_AGENT_STATES
    assert not vocab.BUSY_AGENT_STATES & vocab.DOWN_AGENT_STATES
    assert "idle" not in vocab.BUSY_AGENT_STATES | vocab.DOWN_AGENT_STATES
