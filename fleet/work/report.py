"""The report contract: the last ```` ```fleet-report ```` block of an agent's message, parsed and checked.

An agent ends its final message with a fenced block whose info string is `fleet-report`, holding one
JSON object::

    ```fleet-report
    {"status": "done", "summary": "...", "changed": ["docs/spec.md"], "tests": "...", "risks": "..."}
    ```

`extract_report(message)` finds the LAST such block (fences as CommonMark reads them: ``` or ~~~, up
to three spaces of indent, a block inside another fenced block does not count, an unclosed block runs
to the end of the message), parses its JSON and validates it. It returns either a `Report` or every
problem found, each a short English phrase that can be shown to the model as it is ("status must be
one of done, partial, blocked (got 'finished')"). It never raises on any input.

`REPORT_SCHEMA` is the same contract as a JSON Schema (draft 2020-12) for the service, the MCP output
and the docs; the hand-written checks here accept exactly what it accepts (a property test holds them
together). The hook process loads it (`fleet.hooks` says what that asks of a module).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

ReportStatus = Literal["done", "partial", "blocked"]
STATUSES: Final[tuple[str, ...]] = get_args(ReportStatus)
INFO_STRING: Final = "fleet-report"
KEYS: Final = ("status", "summary", "changed", "tests", "risks")

#: Only the tail of a message is searched: the block belongs at the end, and a hook must stay fast
#: on a model's longest answer.
MAX_MESSAGE_CHARS: Final = 256 * 1024
#: A report is a summary, not the work itself; a larger block is refused rather than stored.
MAX_BLOCK_CHARS: Final = 64 * 1024
#: Each prose field fits on a screen or two.
MAX_TEXT_CHARS: Final = 4000
#: A change list longer than this is a tree dump, not a report.
MAX_CHANGED: Final = 1000
#: Linux PATH_MAX.
MAX_PATH_CHARS: Final = 4096
#: Problems listed for one block; more are summarised as a count.
MAX_PROBLEMS: Final = 12

_PATH_PATTERN: Final = r"^[^\u0000-\u001f]+$"
_NONBLANK: Final = r"\S"
_FENCE: Final = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
#: CommonMark line endings only: str.splitlines would also split on U+2028 inside a JSON string.
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")

REPORT_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "fleet-report",
    "description": "The JSON object an agent puts in the ```fleet-report block at the end of its final message.",
    "type": "object",
    "additionalProperties": False,
    "required": list(KEYS),
    "properties": {
        "status": {"enum": list(STATUSES),
                   "description": "done: the task is finished; partial: some of it; blocked: could not proceed."},
        "summary": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS, "pattern": _NONBLANK,
                    "description": "What was done (or why not), in a few sentences."},
        "changed": {"type": "array", "maxItems": MAX_CHANGED, "uniqueItems": True,
                    "items": {"type": "string", "minLength": 1, "maxLength": MAX_PATH_CHARS,
                              "pattern": _PATH_PATTERN},
                    "description": "Every file created, modified or deleted, relative to the working directory."},
        "tests": {"type": "string", "maxLength": MAX_TEXT_CHARS,
                  "description": "What was run to check the work and what it showed; empty if nothing."},
        "risks": {"type": "string", "maxLength": MAX_TEXT_CHARS,
                  "description": "What might be wrong or is left to do; empty if nothing."},
    },
}


@dataclass(frozen=True)
class Report:
    """A valid report. `changed` keeps the agent's own spelling; verification normalises it."""

    status: ReportStatus
    summary: str
    changed: tuple[str, ...]
    tests: str
    risks: str

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "summary": self.summary, "changed": list(self.changed),
                "tests": self.tests, "risks": self.risks}


@dataclass(frozen=True)
class Extraction:
    """What `extract_report` found: a `report`, or `problems` (never both); `block` is the raw text
    of the last fleet-report block (None when there was none), capped at `MAX_BLOCK_CHARS`."""

    report: Report | None
    problems: tuple[str, ...]
    block: str | None

    @property
    def ok(self) -> bool:
        return self.report is not None


def extract_report(message: object) -> Extraction:
    """Find, parse and validate the last fleet-report block of `message`; never raises."""
    if not isinstance(message, str) or not message:
        return Extraction(None, (f"no ```{INFO_STRING} block in the message",), None)
    block = find_report_block(message)
    if block is None:
        return Extraction(None, (f"no ```{INFO_STRING} block in the message",), None)
    if len(block) > MAX_BLOCK_CHARS:
        return Extraction(None, (f"the {INFO_STRING} block is longer than {MAX_BLOCK_CHARS} characters",),
                          block[:MAX_BLOCK_CHARS])
    obj, problem = _parse_json(block)
    if problem:
        return Extraction(None, (problem,), block)
    report, problems = validate_report(obj)
    return Extraction(report, tuple(problems), block)


def find_report_block(message: str) -> str | None:
    """The content of the last fenced block whose info string's first word is `fleet-report`."""
    text = message[-MAX_MESSAGE_CHARS:]
    found: str | None = None
    lines = _LINE_BREAK.split(text)
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None or (m.group(1)[0] == "`" and "`" in m.group(2)):
            i += 1
            continue
        fence, info = m.group(1), m.group(2).strip()
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= len(fence) \
                    and not close.group(2).strip():
                break
            body.append(lines[i])
            i += 1
        i += 1  # past the closing fence (or the end)
        if info.split(maxsplit=1)[:1] == [INFO_STRING]:
            found = "\n".join(body)
    return found


def validate_report(obj: object) -> tuple[Report | None, list[str]]:
    """Check a parsed JSON value against the contract; return the Report or every problem found."""
    if not isinstance(obj, dict):
        kind = _json_kind(obj)
        return None, [f"the block must hold one JSON object, not {kind}"]
    problems: list[str] = []
    unknown = sorted(str(k) for k in obj if k not in KEYS)
    if unknown:
        problems.append(f"unknown key(s) {', '.join(map(repr, unknown))}; the keys are {', '.join(KEYS)}")
    missing = [k for k in KEYS if k not in obj]
    if missing:
        problems.append(f"missing key(s) {', '.join(map(repr, missing))}")
    status = obj.get("status")
    if "status" in obj and (not isinstance(status, str) or status not in STATUSES):
        problems.append(f"status must be one of {', '.join(STATUSES)} (got {_show(status)})")
    if "summary" in obj:
        problems += _text_problems("summary", obj["summary"], required=True)
    for key in ("tests", "risks"):
        if key in obj:
            problems += _text_problems(key, obj[key], required=False)
    if "changed" in obj:
        problems += _changed_problems(obj["changed"])
    if problems:
        if len(problems) > MAX_PROBLEMS:
            problems = [*problems[:MAX_PROBLEMS], f"and {len(problems) - MAX_PROBLEMS} more problem(s)"]
        return None, problems
    return Report(status=obj["status"], summary=obj["summary"], changed=tuple(obj["changed"]),
                  tests=obj["tests"], risks=obj["risks"]), []


def render_report(report: Report) -> str:
    """The fenced block an agent should write for `report` (what `extract_report` reads back)."""
    return f"```{INFO_STRING}\n{json.dumps(report.to_dict(), ensure_ascii=False)}\n```"


#: The example block the prompt and the fleet-report skill show.
EXAMPLE_BLOCK: Final = render_report(Report(
    status="done", summary="Added the parser and its tests; the CLI now accepts --since.",
    changed=("src/parser.py", "tests/test_parser.py"), tests="pytest -q: 14 passed", risks="none known"))


def _parse_json(block: str) -> tuple[object, str | None]:
    dupes: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                dupes.append(key)
            seen[key] = value
        return seen

    try:
        obj = json.loads(block, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        if not block.strip():
            return None, f"the {INFO_STRING} block is empty; it must hold one JSON object"
        if exc.msg == "Extra data":
            return None, (f"extra text after the JSON object at line {exc.lineno}, column {exc.colno} of the "
                          "block; the block must hold exactly one JSON object")
        return None, f"not valid JSON at line {exc.lineno}, column {exc.colno} of the block: {exc.msg}"
    except (ValueError, RecursionError) as exc:  # e.g. absurd nesting
        return None, f"not valid JSON: {type(exc).__name__}"
    if dupes:
        return None, f"duplicate key(s) {', '.join(map(repr, sorted(set(dupes))))} in the JSON object"
    if _holds_surrogate(obj):  # `"\udcff"` is valid JSON but no text: nothing can store or print it
        return None, "a string in the JSON object holds a lone surrogate escape (\\ud800-\\udfff), which is not text"
    return obj, None


def _holds_surrogate(value: object) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_holds_surrogate(k) or _holds_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_surrogate(v) for v in value)
    return False


def _text_problems(key: str, value: object, *, required: bool) -> list[str]:
    if not isinstance(value, str):
        return [f"{key} must be a string (got {_json_kind(value)})"]
    if required and not re.search(_NONBLANK, value):
        return [f"{key} must not be empty"]
    if len(value) > MAX_TEXT_CHARS:
        return [f"{key} is longer than {MAX_TEXT_CHARS} characters"]
    return []


def _changed_problems(value: object) -> list[str]:
    if not isinstance(value, list):
        return [f"changed must be a list of paths (got {_json_kind(value)})"]
    if len(value) > MAX_CHANGED:
        return [f"changed lists more than {MAX_CHANGED} paths"]
    problems: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        if not isinstance(item, str):
            problems.append(f"changed[{i}] must be a path string (got {_json_kind(item)})")
        elif not item or len(item) > MAX_PATH_CHARS or not re.fullmatch(_PATH_PATTERN, item):
            problems.append(f"changed[{i}] is not a usable path ({_show(item)})")
        elif item in seen:
            problems.append(f"changed lists {item!r} twice")
        else:
            seen.add(item)
    return problems


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _show(value: object) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value) if _jsonable(value) else _json_kind(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _jsonable(value: object) -> bool:
    return value is None or isinstance(value, (bool, int, float))
