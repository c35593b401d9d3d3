"""The assignment prompt: one template, filled in; what an agent reads when it gets work.

The template is `assignment_template.md` in this package, or a user's file named by
`[fleet] assignment_template = "path"`. It is a `string.Template`: `${name}` placeholders, `$$` for
a literal `$`. Placeholders (each replaced by whole sentences, or by nothing when it does not apply):

- `${assignment_id}`, `${task}`, `${cwd}`: as given (`assignment_id`, `task` and `report_contract`
  are required in any template);
- `${write_scope}`: "do not change any file", or exactly the paths it may write;
- `${read_scope}`: the paths it should read, or that it may read its whole working directory;
- `${skills}`: each required skill as Codex's explicit mention `$name` (Codex 0.169 then inlines that
  SKILL.md; measured: a mention is `$` + letters, digits, `_`, `-`, `:`, so `$plugin:skill` works;
  a name with other characters cannot be mentioned and is named in words instead);
- `${deadline}`: an absolute time, UTC (ISO 8601) and, when a zone is given, local;
- `${checks}`: the commands fleet runs afterwards;
- `${budget}`: the assignment's token budget and what happens past it (a template without this
  placeholder gets the sentence before `${report_contract}`, so every prompt states a budget);
- `${report_contract}`: the fleet-report block the agent must end with, with an example.

Limits: a task is prompt text (`fleet.prompttext`: the send's rule, at most `MAX_TASK_CHARS`), a
rendered prompt at most `MAX_PROMPT_CHARS` (well under the send limit, and under what fits
comfortably in one pasted message). Rendering is pure: the
clock and the zone are arguments. Loading a template reads a file; nothing else here does I/O.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from importlib import resources
from pathlib import Path
from typing import Final

from fleet.durations import format_duration
from fleet.errors import ConfigError, InvalidInput, TextTooLong
from fleet.prompttext import check_text
from fleet.tokens import format_tokens

from .report import EXAMPLE_BLOCK, INFO_STRING

#: Task + scope + contract; below the send limit (32,000) with room for a long path list.
MAX_PROMPT_CHARS: Final = 24_000
#: A user template is a page of prose.
MAX_TEMPLATE_BYTES: Final = 16 * 1024
MAX_SKILLS: Final = 32
MAX_CHECKS: Final = 16
MAX_CHECK_CHARS: Final = 1000
DEFAULT_TEMPLATE: Final = "assignment_template.md"
PLACEHOLDERS: Final = frozenset({"assignment_id", "task", "cwd", "write_scope", "read_scope", "skills", "deadline",
                                 "checks", "budget", "report_contract"})
REQUIRED_PLACEHOLDERS: Final = frozenset({"assignment_id", "task", "report_contract"})
#: What Codex 0.169 reads as a skill mention after `$` (measured: `.` ends it, `:` does not).
MENTION: Final = re.compile(r"^[A-Za-z0-9_:-]+$")
_TASK_TOKEN: Final = "\x00task\x00"

REPORT_CONTRACT: Final = (
    f"When you are done (or cannot go on), end your final message with a fenced block whose info string is "
    f"{INFO_STRING}, holding one JSON object with exactly these keys: status (done, partial or blocked), "
    "summary (what you did, or why not), changed (every file you created, changed or deleted, relative to "
    "the working directory; [] if none), tests (what you ran and what it showed) and risks (what may be "
    "wrong or is left to do). fleet compares it with the files that really changed. For example:\n"
    f"{EXAMPLE_BLOCK}"
)


@dataclass(frozen=True)
class PromptSpec:
    """Everything the prompt states. Paths are in `scope` normal form, relative to `cwd`; an empty
    `write_paths` (or a role other than worker) means the assignment writes nothing."""

    assignment_id: str
    task: str
    cwd: str
    write_paths: tuple[str, ...] = ()
    read_paths: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    deadline: float | None = None
    role: str = "worker"
    #: The token budget (`fleet.tokens`), None for none.
    budget: int | None = None


def check_task(task: str) -> str:
    """The task as it will be sent (surrounding blank lines dropped); refuses what prompt text may
    not be (`fleet.prompttext.check_text`: empty, over `MAX_TASK_CHARS`, control characters)."""
    text = task.strip("\n\r ") if isinstance(task, str) else ""
    check_text(text, kind="task")
    return text


def render_prompt(spec: PromptSpec, *, now: float, template: str | None = None, tz: tzinfo | None = None) -> str:
    """The prompt for `spec`, sent at `now` (epoch seconds). `template` is the text of a template
    (already checked by `check_template`; default: the packaged one); `tz` adds local deadline times.
    Raises `InvalidInput`/`TextTooLong` for a bad task, too many skills or checks, or a prompt over
    `MAX_PROMPT_CHARS`."""
    task = check_task(spec.task)
    if len(spec.skills) > MAX_SKILLS:
        raise InvalidInput(f"{len(spec.skills)} skills named; the limit is {MAX_SKILLS}.", hint="Name fewer skills.")
    if len(spec.checks) > MAX_CHECKS or any(len(c) > MAX_CHECK_CHARS or not c.strip() for c in spec.checks):
        raise InvalidInput(f"Checks must be at most {MAX_CHECKS} non-empty commands of up to {MAX_CHECK_CHARS} "
                           "characters.", hint="Put a longer check in a script and name the script.")
    values = {
        "assignment_id": spec.assignment_id,
        "task": _TASK_TOKEN,  # put in after blank lines are tidied, so the task keeps its own
        "cwd": spec.cwd,
        "write_scope": _write_scope(spec),
        "read_scope": _read_scope(spec),
        "skills": _skills(spec.skills),
        "deadline": _deadline(spec.deadline, now, tz),
        "checks": _checks(spec.checks, spec.cwd),
        "budget": budget_text(spec.budget),
        "report_contract": REPORT_CONTRACT,
    }
    tmpl = string.Template(template if template is not None else default_template())
    if spec.budget is not None and "budget" not in tmpl.get_identifiers():  # a user template: still say it
        values["report_contract"] = f"{values['budget']}\n\n{REPORT_CONTRACT}"
    text = tmpl.safe_substitute(values)
    text = re.sub(r"\n{3,}", "\n\n", text).strip().replace(_TASK_TOKEN, task) + "\n"
    if len(text) > MAX_PROMPT_CHARS:
        raise TextTooLong(
            f"The assignment prompt would be {len(text)} characters; the limit is {MAX_PROMPT_CHARS}.",
            hint="Shorten the task, or name directories instead of many files.",
            chars=len(text), limit=MAX_PROMPT_CHARS,
        )
    return text


def default_template() -> str:
    return resources.files("fleet.work").joinpath(DEFAULT_TEMPLATE).read_text(encoding="utf-8")


def load_template(path: Path | None) -> str:
    """The user's template at `path` (checked), or the packaged one when `path` is None."""
    if path is None:
        return default_template()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"The assignment template {path} cannot be read: {exc.strerror or exc}.",
                          hint="Fix [fleet] assignment_template in fleet.toml, or remove it to use the default.",
                          path=str(path)) from exc
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise ConfigError(f"The assignment template {path} is larger than {MAX_TEMPLATE_BYTES} bytes.",
                          hint="Keep the template to a page; the task and scope are filled in.", path=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"The assignment template {path} is not UTF-8.", hint="Save it as UTF-8.",
                          path=str(path)) from exc
    check_template(text, str(path))
    return text


def check_template(text: str, source: str) -> None:
    """Raise `ConfigError` naming `source` if the template has unknown or missing placeholders or a
    stray `$` (write `$$` for a literal one)."""
    tmpl = string.Template(text)
    if not tmpl.is_valid():
        raise ConfigError(f"The assignment template {source} has a `$` that is not a placeholder.",
                          hint="Write `$$` for a literal `$`; placeholders are ${name}.", path=source)
    used = set(tmpl.get_identifiers())
    unknown = sorted(used - PLACEHOLDERS)
    missing = sorted(REQUIRED_PLACEHOLDERS - used)
    if unknown or missing:
        parts = ([f"unknown placeholder(s) {', '.join(unknown)}"] if unknown else []) + (
            [f"missing {', '.join('${' + m + '}' for m in missing)}"] if missing else [])
        raise ConfigError(f"The assignment template {source}: {'; '.join(parts)}.",
                          hint=f"Placeholders: {', '.join(sorted(PLACEHOLDERS))}.", path=source)


def mention(skill: str) -> str:
    """How the prompt names a skill: Codex's `$name` mention when the name allows it, else in words."""
    return f"${skill}" if MENTION.match(skill) else f'the skill "{skill}"'


def _write_scope(spec: PromptSpec) -> str:
    if spec.role != "worker" or not spec.write_paths:
        return ("Do not create, change or delete any file: this assignment is read-only. Investigate and report "
                "what you find.")
    if "./" in spec.write_paths:
        return f"You may create, change and delete files anywhere in your working directory {spec.cwd}."
    return (f"You may create, change or delete only these paths (relative to {spec.cwd}; a trailing / means "
            f"everything under that directory):\n{_bullets(spec.write_paths)}\nDo not change anything else. If the "
            "task needs other changes, stop and say so in the report.")


def _read_scope(spec: PromptSpec) -> str:
    if not spec.read_paths:
        return f"You may read anything in your working directory {spec.cwd}."
    return f"Read only what you need from these paths (relative to {spec.cwd}):\n{_bullets(spec.read_paths)}"


def _skills(skills: Sequence[str]) -> str:
    if not skills:
        return ""
    return "Use these skills: " + ", ".join(mention(s) for s in skills) + "."


def _deadline(deadline: float | None, now: float, tz: tzinfo | None) -> str:
    if deadline is None:
        return ""
    utc = datetime.fromtimestamp(deadline, UTC)
    text = f"Deadline: {utc.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    if tz is not None:
        local = utc.astimezone(tz)
        text += f" ({local.strftime('%Y-%m-%d %H:%M')} {local.tzname() or local.strftime('%z')} local)"
    left = deadline - now
    when = f"{format_duration(left)} from now" if left >= 1 else "already passed"
    return f"{text}, {when}. Report before then, even if the work is unfinished."


def budget_text(budget: int | None) -> str:
    """The prompt's budget sentences (empty without a budget)."""
    if budget is None:
        return ""
    return (f"Token budget: {format_tokens(budget)} tokens ({budget}), counted as input plus output tokens "
            "(cached input included) over every turn of this assignment. Past it, the fleet watchdog interrupts "
            "your turn and asks for your report; if none comes, the assignment fails as over_budget. Work "
            "economically, and report (status partial if unfinished) before the budget runs out.")


def _checks(checks: Sequence[str], cwd: str) -> str:
    if not checks:
        return ""
    lines = "\n".join(f"- `{c}`" if "`" not in c else f"- {c}" for c in checks)
    return f"After your report, fleet runs these checks in {cwd}; the work is accepted only if all pass:\n{lines}"


def _bullets(paths: Sequence[str]) -> str:
    return "\n".join(f"- {p}" for p in paths)
