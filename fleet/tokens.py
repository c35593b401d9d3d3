"""Token budgets: `200k`, `1.5m`, `250000`, and back; and what counts against one.

Grammar: a whole number, or a number with one decimal point, optionally followed by a unit `k`
(thousand), `m` (million) or `b` (billion), any case; surrounding spaces and `_` between digits are
accepted (`200_000`). The result must be a whole number of tokens (`1.5k` is 1500; `1.2345k` is
refused), at least `MIN_TOKENS` and at most `MAX_TOKENS`. A plain int is taken as tokens. Zero,
negatives, signs, exponents, bools and anything else are refused with `InvalidInput` and a hint.

**What counts** (`counted`): input plus output, as Codex reports a turn's usage. Codex's cached
input is part of its input figure and reasoning part of its output figure, so neither is added
again. That is the usual billable total (cached input is billed at a lower rate, but it is still
input the model read). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NoReturn

from .errors import invalid_value

#: A budget below this is spent by the prompt alone (Codex's instructions are ~10k tokens).
MIN_TOKENS: Final = 1
#: Ten billion: far beyond any one assignment, and well inside SQLite's and JSON's integers.
MAX_TOKENS: Final = 10_000_000_000
#: Longer input is not a budget anyone typed on purpose.
MAX_TEXT: Final = 32

_UNITS: Final = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
_GRAMMAR: Final = re.compile(r"([0-9](?:_?[0-9])*)(?:\.([0-9]+))?([kmb]?)")
_EXAMPLES: Final = "e.g. 200k, 1.5m, 250000"


def parse_tokens(value: str | int, *, what: str = "budget") -> int:
    """Tokens in `value`; raise `InvalidInput` (code `invalid_input`) naming `what` and the rule broken."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        _fail(what, repr(value), "it is not a number of tokens")
    if isinstance(value, int):
        return _bounded(what, str(value), value)
    raw = value
    text = raw.strip().lower()
    if not text or len(text) > MAX_TEXT:
        _fail(what, raw, "it is empty" if not text else f"it is longer than {MAX_TEXT} characters")
    match = _GRAMMAR.fullmatch(text)
    if match is None:
        _fail(what, raw, "it is not a positive number with an optional unit k, m or b")
    whole, frac, unit = match.groups()
    frac = frac or ""
    scaled = int(whole.replace("_", "") + frac) * _UNITS[unit]  # exact: integers only, no float
    tokens, rest = divmod(scaled, 10 ** len(frac))
    if rest:
        _fail(what, raw, "it is not a whole number of tokens",
              hint=f"Use fewer decimals ({format_tokens(tokens)} is close), {_EXAMPLES}.")
    return _bounded(what, raw, tokens)


def format_tokens(tokens: int) -> str:
    """`tokens` the short way `parse_tokens` reads back exactly: `200k`, `1.5m`, `5.1k`, `1001`: never
    longer than the plain number."""
    if tokens < 0:
        return "-" + format_tokens(-tokens)
    for unit in ("b", "m", "k"):
        size = _UNITS[unit]
        if tokens >= size and (tokens * 1000) % size == 0:  # at most three decimals, exact
            whole, rest = divmod(tokens, size)
            frac = f"{rest * 1000 // size:03d}".rstrip("0")
            short = f"{whole}{'.' + frac if frac else ''}{unit}"
            return short if len(short) <= len(str(tokens)) else str(tokens)
    return str(tokens)


def counted(usage: Mapping[str, object] | None) -> int:
    """The tokens of `usage` (a `fleet.vocab.TokenUsage`, or a stored one with `turns`) that count
    against a budget: input plus output (see the module docstring). None or junk counts 0."""
    if not usage:
        return 0
    total = 0
    for key in ("input", "output"):
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            total += value
    return total


def budget_use(budget: int | None, usage: Mapping[str, object] | None) -> dict[str, int | bool] | None:
    """How an assignment stands against its budget: `used` (`counted`), `left` (negative once over)
    and `over` (used passed the budget); None without a budget."""
    if budget is None:
        return None
    used = counted(usage)
    return {"used": used, "left": budget - used, "over": used > budget}


def _bounded(what: str, raw: str, tokens: int) -> int:
    if tokens < MIN_TOKENS:
        _fail(what, raw, "a budget must be at least 1 token", hint=f"Give a positive budget ({_EXAMPLES}).")
    if tokens > MAX_TOKENS:
        _fail(what, raw, f"it is more than the limit of {format_tokens(MAX_TOKENS)}")
    return tokens


def _fail(what: str, raw: str, why: str, *, hint: str = "") -> NoReturn:
    raise invalid_value(what, raw, "token count", why, limit=MAX_TEXT,
                        hint=hint or f"Give a positive number of tokens, optionally with k, m or b ({_EXAMPLES}).")
