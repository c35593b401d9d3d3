"""What the watchdog says: the prompts it sends agents and the escalation it hands to people. Pure.

Every prompt names the assignment, so an agent working on several things over a session knows which
one is meant, and every report request carries the whole report contract, so the agent can answer
without scrolling back to the assignment.
"""

from __future__ import annotations

from typing import Any, Final

from fleet.work.prompt import REPORT_CONTRACT

from .decide import Action

#: Sent when a usage limit has reset and no assignment is open: Codex keeps the failed prompt in the
#: session's history, so a short nudge resumes it (measured on 0.169).
CONTINUE_TEXT: Final = "continue"
#: Escalations quote at most this much of an action's reason in a lead's prompt.
MAX_REASON_CHARS: Final = 1500


def report_request(assignment: str, *, firm: bool = False) -> str:
    """The report request (`firm`: the `remind` rung's second, firmer one)."""
    if firm:
        head = (f"Second request from the fleet watchdog: assignment {assignment} is still open and fleet has "
                "no valid report from you. Stop what you are doing and report now, even if the work is not "
                "finished (use status partial or blocked and say what is left).")
    else:
        head = (f"The fleet watchdog is asking for your report on assignment {assignment}: it is still open "
                "and fleet has no valid report from you. If you are done, or cannot go on, report now; if you "
                "are still working, report status partial with what is left.")
    return f"{head}\n\n{REPORT_CONTRACT}"


def resume_text(assignment: str | None) -> str:
    """After a usage limit reset with no assignment to re-send."""
    if assignment is None:
        return CONTINUE_TEXT
    return (f"{CONTINUE_TEXT}: your usage limit has reset; carry on with assignment {assignment} where you "
            "left off, and end with its fleet-report block.")


def lead_prompt(fleet: str, action: Action) -> str:
    """The prompt an idle lead agent gets for an escalation or a notice."""
    reason = action.reason if len(action.reason) <= MAX_REASON_CHARS else action.reason[: MAX_REASON_CHARS - 3] + "..."
    about = f" about {action.agent}" + (f" (assignment {action.assignment})" if action.assignment else "")
    return (f"Fleet watchdog ({fleet}), {action.action}{about}: {reason}\n"
            "Decide what to do: look with `fleet status` and `fleet tail`, then answer, re-assign, or stop it.")


def notify_payload(fleet: str, action: Action, at: float) -> dict[str, Any]:
    """The JSON document `notify_command` reads on stdin for one escalation or notice."""
    return {"fleet": fleet, "at": at, **action.to_dict()}
