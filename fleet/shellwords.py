"""Split a command line the way the shell that runs it would, or say why that cannot be known.

Codex 0.169 hands fleet's PermissionRequest hook the model's `cmd` string exactly (`tool_input.command`)
and runs it as `/bin/bash -lc CMD` or `/bin/bash -c CMD`; the model may also pick the shell with the
tool's `shell` argument (`sh`, meaning dash here, or `zsh`), and the hook is not told which (measured on
0.169). So the words fleet judges must be the words that bash, dash and zsh all produce, and this
module accepts only a small grammar on which the three agree, byte for byte:

- the whole line is printable ASCII (no control character, no tab, no newline, nothing non-ASCII);
- words are separated by plain spaces;
- a word is made of plain characters (`SAFE_CHARS`), single-quoted text (any printable ASCII but `'`),
  and double-quoted text without anything that expands or escapes inside double quotes
  (no `$`, backquote, backslash or `!`), glued together as the shells glue them;
- a word may not start with `=` (zsh replaces `=name` with the path of `name`).

Everything else (`;`, `|`, `&`, redirections, `$`, backslashes, globs, `~`, `#`, braces, brackets,
parentheses, `^`, a lone quote) gets a reason instead of words. Refusing costs a person one click;
a wrong split could run a different program outside the sandbox. Pure, no I/O.
"""

from __future__ import annotations

import string
from typing import Final

#: Characters a word may hold outside quotes: nothing any of the three shells expands or splits on.
SAFE_CHARS: Final = frozenset(string.ascii_letters + string.digits + "_./,:+@%=-")
#: Inside double quotes these still expand or escape (`!` only in an interactive bash, refused anyway).
_DOUBLE_QUOTE_ACTIVE: Final = frozenset('$`\\!"')
#: Printable ASCII: the only bytes a judged line may hold.
_PRINTABLE: Final = frozenset(chr(c) for c in range(0x20, 0x7F))


def split_words(line: str) -> tuple[str, ...] | str:
    """The argv bash, dash and zsh all make of `line`, or a short phrase saying why it is not judged.

    Total: any string gets one or the other. An empty or blank line gives `()`.
    """
    for ch in line:
        if ch not in _PRINTABLE:
            return f"it holds {_name(ch)}, which the shell may split or read differently"
    words: list[str] = []
    word: list[str] = []
    in_word = False
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch == " ":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            i += 1
            continue
        if not in_word and ch == "=":
            return "a word starts with `=`, which zsh expands to a program's path"
        if ch in ("'", '"'):
            end = line.find(ch, i + 1)
            if end < 0:
                return f"it has an unterminated {'single' if ch == chr(39) else 'double'} quote"
            inner = line[i + 1:end]
            if ch == '"':
                active = sorted(set(inner) & _DOUBLE_QUOTE_ACTIVE)
                if active:
                    return f"its double-quoted text uses {' '.join(repr(c) for c in active)}, which the shell expands"
            word.append(inner)
            in_word = True
            i = end + 1
            continue
        if ch not in SAFE_CHARS:
            return f"it uses shell syntax ({ch!r})"
        word.append(ch)
        in_word = True
        i += 1
    if in_word:
        words.append("".join(word))
    return tuple(words)


#: Words the shells read as syntax in command position (bash's reserved words, zsh's and its
#: precommand modifiers): as the program they would not be run as one.
RESERVED: Final = frozenset({"!", "case", "coproc", "do", "done", "elif", "else", "esac", "fi", "for", "function",
                             "if", "in", "select", "then", "time", "until", "while", "{", "}", "[[", "]]",
                             "foreach", "end", "repeat", "nocorrect", "noglob", "builtin", "command", "exec",
                             "-"})


def split_command(line: str) -> tuple[str, ...] | str:
    """`split_words`, and the first word must be what the shell runs: not empty, not a variable
    assignment (`NAME=value` sets the environment of the next word instead), not a reserved word."""
    words = split_words(line)
    if isinstance(words, str):
        return words
    if not words:
        return "it is empty"
    first = line.lstrip(" ").split(" ", 1)[0]
    if "=" in first:
        return "its first word holds `=`, which the shell may read as an environment assignment"
    if words[0] in RESERVED:
        return f"`{words[0]}` is shell syntax, not a program"
    return words


def _name(ch: str) -> str:
    if ch == "\t":
        return "a tab"
    if ch == "\n":
        return "a newline"
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"a control character ({ch!r})"
    return f"a non-ASCII character (U+{ord(ch):04X})"
