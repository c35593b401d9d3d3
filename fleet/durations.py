"""Human durations for deadlines and timeouts: `90s`, `10m`, `1h30m`, `2d`, and back.

Grammar: one or more `<digits><unit>` groups, units `d` `h` `m` `s` in that order, each at most once
(`1h30m`, `2d12h`, `45s`). No decimals (`1.5h` is refused: write `1h30m`), no bare numbers (`30` could
mean seconds or minutes, so it is refused with a hint), no signs, no inner spaces; surrounding spaces
and upper-case units are accepted. Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from typing import Final, NoReturn

from .errors import invalid_value

#: The shortest duration anything in fleet waits for; below a second a deadline is already missed.
MIN_SECONDS: Final = 1.0
#: Thirty days: longer than any assignment or lease should run unattended; also keeps the arithmetic
#: on deadlines far from float trouble.
MAX_SECONDS: Final = 30 * 86400.0
#: Longer input is not a duration anyone typed on purpose; refuse it before the regex sees it.
MAX_TEXT: Final = 32

_UNITS: Final = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_GRAMMAR: Final = re.compile(r"(?:([0-9]{1,9})d)?(?:([0-9]{1,9})h)?(?:([0-9]{1,9})m)?(?:([0-9]{1,9})s)?")
_EXAMPLES: Final = "e.g. 90s, 10m, 1h30m, 2d"


def parse_duration(text: str, *, what: str = "duration", max_seconds: float = MAX_SECONDS) -> float:
    """Seconds in `text`; raise `InvalidInput` (code `invalid_input`) naming `what` and the rule broken.

    `max_seconds` lowers the cap for a caller whose limit is tighter (it never raises it past
    `MAX_SECONDS`).
    """
    cap = min(max_seconds, MAX_SECONDS)
    raw = text if isinstance(text, str) else ""
    value = raw.strip().lower()
    if not value or len(value) > MAX_TEXT:
        _fail(what, raw, "it is empty" if not value else f"it is longer than {MAX_TEXT} characters")
    if value.isascii() and value.isdigit():
        _fail(what, raw, "a number needs a unit", hint=f"Write {value}s or {value}m ({_EXAMPLES}).")
    match = _GRAMMAR.fullmatch(value)
    if match is None or not any(match.groups()):
        _fail(what, raw, "it is not whole numbers with units d, h, m, s in that order")
    seconds = float(sum(int(g) * mult for g, (_, mult) in zip(match.groups(), _UNITS, strict=True) if g))
    if seconds < MIN_SECONDS:
        _fail(what, raw, f"it is shorter than {format_duration(MIN_SECONDS)}")
    if seconds > cap:
        _fail(what, raw, f"it is longer than the limit of {format_duration(cap)}")
    return seconds


def format_duration(seconds: float) -> str:
    """`seconds` rounded to whole seconds in the grammar `parse_duration` reads (`5400` -> `1h30m`).

    Zero is `0s`; a negative value (an overdue deadline) gets a leading `-`.
    """
    total = round(seconds)
    if total == 0:
        return "0s"
    sign, total = ("-", -total) if total < 0 else ("", total)
    parts = []
    for unit, mult in _UNITS:
        count, total = divmod(total, mult)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def _fail(what: str, raw: str, why: str, *, hint: str = "") -> NoReturn:
    raise invalid_value(what, raw, "duration", why, limit=MAX_TEXT,
                        hint=hint or f"Use whole numbers with units d, h, m, s ({_EXAMPLES}).")
