"""The watchdog's own records, in the ledger's SQLite file: per-assignment ladders, per-agent crash and
notice records, and one row per tick.

Two tables of `fleet.db`, whose schema `fleet.work.schema` owns (its migration 2 creates them; the
ledger's operations never read them):

- `watchdog_state(kind, key, agent, value, updated_at)`: `kind` is `ladder` (key: assignment id) or
  `agent` (key: agent name); `value` is the record as JSON. Rewritten in place by the tick that owns
  the overlap lock, so there is one writer at a time; readers (`fleet watchdog status`) read beside it.
- `watchdog_ticks(id, at, dry_run, ms, skipped, actions)`: what each tick did, newest kept
  (`MAX_TICKS`); `fleet watchdog status` shows the last few.

The actions themselves also go to the ledger's append-only `events` table (kind `watchdog_<action>`),
where a lead polling `fleet events` sees them; this file only keeps what the next tick must know.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from fleet.errors import LedgerError, StateDirError
from fleet.work.schema import ensure_watchdog_tables

from .decide import Ladder

#: Ticks kept for `status`: a day of one-minute ticks is plenty to see what happened overnight.
MAX_TICKS: Final = 1500
#: Turn ids the watchdog started, kept per assignment; a climb sends at most a handful.
MAX_OWN_TURNS: Final = 32
#: Same wait as the ledger's: transactions here are one or two statements.
BUSY_TIMEOUT: Final = 10.0
#: A watchdog that recorded a tick within this many periods is running (its timer, or `fleet
#: watchdog run`); a missed tick or two (a slow tick, a suspended laptop) does not count as stopped.
ACTIVE_PERIODS: Final = 3


@dataclass(frozen=True)
class LadderRecord:
    """One assignment's climb (`decide.Ladder`) and the turns the watchdog's own prompts started, whose
    events are not the agent's work (see `decide`'s `last_work_at`)."""

    assignment: str
    agent: str
    ladder: Ladder = field(default_factory=Ladder)
    own_turns: tuple[str, ...] = ()

    def with_turn(self, turn_id: str | None) -> LadderRecord:
        if not turn_id or turn_id in self.own_turns:
            return self
        return replace(self, own_turns=(*self.own_turns, turn_id)[-MAX_OWN_TURNS:])


@dataclass(frozen=True)
class AgentRecord:
    """What the watchdog remembers about one agent between ticks.

    `restarts` / `last_restart_at`: the current crash streak (see `decide.RESTART_STREAK_RESET`).
    `fatal_at`: the watchdog gave up restarting it; cleared by any later launch (a person's `fleet up`).
    `last_notice_at`: the last `notify_only` about it. `approval_escalated`: the approval request id
    already escalated.
    """

    agent: str
    restarts: int = 0
    last_restart_at: float | None = None
    fatal_at: float | None = None
    fatal_reason: str | None = None
    last_notice_at: float | None = None
    approval_escalated: str | None = None
    approval_escalated_at: float | None = None


@dataclass(frozen=True)
class TickRecord:
    id: int
    at: float
    dry_run: bool
    ms: int
    skipped: str | None
    actions: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class WatchdogStore:
    """A connection to the watchdog tables in `<state_dir>/fleet.db`. Open it after the ledger has
    opened the file (the ledger makes it 0600, refuses a symlink and migrates it, creating these
    tables); on the watchdog's fallback file it creates them (`ensure_watchdog_tables`). `close()`
    when done."""

    def __init__(self, db_path: Path, *, busy_timeout: float = BUSY_TIMEOUT) -> None:
        try:
            self._db = sqlite3.connect(db_path, timeout=busy_timeout, isolation_level=None)
            # One fsync per tick row is the tick's largest fixed cost. In WAL mode NORMAL still survives
            # any process crash; a power cut may lose the last ticks' records, and then a report
            # request or a rung is repeated once, which is harmless.
            self._db.execute("PRAGMA synchronous = NORMAL")
            ensure_watchdog_tables(self._db, db_path)
        except LedgerError:  # a ledger not migrated yet: not this store's to change
            self._db.close()
            raise
        except sqlite3.Error as exc:
            raise StateDirError(f"Cannot open the watchdog's tables in {db_path}: {exc}.",
                                hint="Check the state dir's permissions and free space.") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> WatchdogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ladders and agents ---------------------------------------------------------------------

    def ladders(self, assignments: Iterable[str]) -> dict[str, LadderRecord]:
        wanted = list(dict.fromkeys(assignments))
        if not wanted:
            return {}
        rows = self._db.execute(
            f"SELECT key, agent, value FROM watchdog_state WHERE kind = 'ladder' AND key IN "
            f"({', '.join('?' * len(wanted))})", wanted).fetchall()
        return {key: ladder_from_row(key, agent, value) for key, agent, value in rows}

    def agents(self) -> dict[str, AgentRecord]:
        rows = self._db.execute("SELECT key, value FROM watchdog_state WHERE kind = 'agent'").fetchall()
        return {key: agent_from_value(value) for key, value in rows}

    def save_ladder(self, record: LadderRecord, now: float) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO watchdog_state (kind, key, agent, value, updated_at) "
                       "VALUES ('ladder', ?, ?, ?, ?)", (record.assignment, record.agent, ladder_value(record), now))

    def save_agent(self, record: AgentRecord, now: float) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO watchdog_state (kind, key, agent, value, updated_at) "
                       "VALUES ('agent', ?, ?, ?, ?)", (record.agent, record.agent, dumps(asdict(record)), now))

    def forget_ladders(self, keep: Iterable[str]) -> int:
        """Drop the ladders of assignments not in `keep` (ended ones); returns how many."""
        kept = set(keep)
        rows = self._db.execute("SELECT key FROM watchdog_state WHERE kind = 'ladder'")
        stale = [k for (k,) in rows if k not in kept]
        if not stale:  # the usual case: no write, no fsync
            return 0
        with self._write() as db:
            return db.execute(f"DELETE FROM watchdog_state WHERE kind = 'ladder' AND key IN "
                              f"({', '.join('?' * len(stale))})", stale).rowcount

    # -- ticks ----------------------------------------------------------------------------------

    def add_tick(self, at: float, *, dry_run: bool, ms: int, skipped: str | None,
                 actions: list[dict[str, Any]]) -> int:
        with self._write() as db:
            cur = db.execute("INSERT INTO watchdog_ticks (at, dry_run, ms, skipped, actions) VALUES (?, ?, ?, ?, ?)",
                             (at, int(dry_run), ms, skipped, dumps(actions)))
            tick_id = int(cur.lastrowid or 0)
            db.execute("DELETE FROM watchdog_ticks WHERE id <= ?", (tick_id - MAX_TICKS,))
            return tick_id

    def ticks(self, limit: int = 10, *, acted_only: bool = False) -> list[TickRecord]:
        """The newest ticks first; `acted_only` keeps those that did something."""
        sql = "SELECT id, at, dry_run, ms, skipped, actions FROM watchdog_ticks"
        if acted_only:
            sql += " WHERE actions != '[]'"
        rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (max(1, limit),)).fetchall()
        return [TickRecord(r[0], r[1], bool(r[2]), r[3], r[4], json.loads(r[5])) for r in rows]

    def will_restart(self, agent: str, every: float, now: float) -> bool:
        return _restart_from(self._db, agent, every, now)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise


def will_restart(db_path: Path, agent: str, every: float, now: float) -> bool:
    """Whether a running watchdog will restart `agent` after a crash (and re-send the turn it lost):
    it recorded a tick within `ACTIVE_PERIODS` periods of `every` and has not marked the agent fatal.
    The work layer asks before it fails an exited agent's assignment. Read-only (never creates the
    file or the tables); False when they do not exist or cannot be read."""
    if not db_path.exists():
        return False
    try:
        db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
    except sqlite3.Error:
        return False
    try:
        return _restart_from(db, agent, every, now)
    finally:
        db.close()


def _restart_from(db: sqlite3.Connection, agent: str, every: float, now: float) -> bool:
    """`will_restart` on an open connection; False when the tables cannot be read."""
    try:
        last = db.execute("SELECT MAX(at) FROM watchdog_ticks").fetchone()[0]
        row = db.execute("SELECT value FROM watchdog_state WHERE kind = 'agent' AND key = ?", (agent,)).fetchone()
    except sqlite3.Error:
        return False
    return restart_expected(last, row[0] if row else None, every, now)


def restart_expected(last_tick: float | None, agent_value: str | None, every: float, now: float) -> bool:
    """The rule of `will_restart`, on the newest tick's time and the agent's record (JSON) if any."""
    if last_tick is None or now - float(last_tick) > ACTIVE_PERIODS * every:
        return False
    return agent_value is None or json.loads(agent_value).get("fatal_at") is None


def dumps(value: Any) -> str:
    """A record's stored JSON (both stores)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def ladder_value(record: LadderRecord) -> str:
    """A ladder record's stored value (both stores)."""
    return dumps({"ladder": asdict(record.ladder), "own_turns": list(record.own_turns)})


def ladder_from_row(key: str, agent: str, value: str) -> LadderRecord:
    raw = json.loads(value)
    return LadderRecord(key, agent, Ladder(**raw.get("ladder", {})), tuple(raw.get("own_turns", ())))


def agent_from_value(value: str) -> AgentRecord:
    """An agent record from its stored value; fields a newer fleet added are left out."""
    known = set(AgentRecord.__dataclass_fields__)
    return AgentRecord(**{k: v for k, v in json.loads(value).items() if k in known})
