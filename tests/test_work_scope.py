"""Write scope: patch paths, normal form, and the lexical and on-disk checks (real temp dirs)."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.work.scope import (
    MAX_PATCH_CHARS,
    MAX_PATCH_PATHS,
    allows,
    check_writes,
    normalize_scope,
    patch_paths,
    patch_writes,
    relative_to,
)

PATCH = (
    "*** Begin Patch\n*** Add File: a.txt\n+hello\n*** Update File: b.txt\n*** Move to: c.txt\n@@\n-old\n+new\n"
    "*** Delete File: d.txt\n*** Update File: a.txt\n@@\n-x\n+y\n*** End Patch\n"
)


def test_patch_paths_are_every_added_updated_moved_and_deleted_file_once() -> None:
    assert patch_paths(PATCH) == ["a.txt", "b.txt", "c.txt", "d.txt"]


def test_patch_paths_ignore_content_lines_that_look_like_headers() -> None:
    patch = "*** Begin Patch\n*** Add File: a.txt\n+*** Add File: sneaky.txt\n*** End Patch\n"
    assert patch_paths(patch) == ["a.txt"]
    assert patch_paths("*** Add File: spaced name.txt \r\n") == ["spaced name.txt"]
    assert patch_paths(None) == []  # type: ignore[arg-type]


def test_normalize_scope_gives_one_normal_form(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    result = normalize_scope(["docs", "docs/", "./src/a.py", f"{tmp_path}/src/b.py", "src/x/../a.py", "out/"],
                             str(tmp_path))
    assert result.entries == ("docs/", "src/a.py", "src/b.py", "out/")
    assert result.problems == ()
    assert normalize_scope(["."], str(tmp_path)).entries == ("./",)
    assert normalize_scope([str(tmp_path)], str(tmp_path)).entries == ("./",)


def test_normalize_scope_names_every_bad_entry(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "link").symlink_to(outside)
    result = normalize_scope(["../x", "/etc/passwd", "", "a\nb", "link/", "ok.txt"], str(cwd))
    assert result.entries == ("ok.txt",)
    assert result.problems == (
        f"'../x' is outside the working directory {cwd}",
        f"'/etc/passwd' is outside the working directory {cwd}",
        "'' is not a usable path",
        "'a\\nb' is not a usable path",
        f"'link/' resolves through a symlink to {outside}, outside the working directory",
    )


def test_normalize_scope_caps_the_number_of_entries(tmp_path: Path) -> None:
    result = normalize_scope([f"f{i}" for i in range(100)], str(tmp_path))
    assert len(result.entries) == 64
    assert result.problems == ("more than 64 paths; name directories instead",)


def test_allows_directories_files_and_the_whole_cwd() -> None:
    assert allows(["docs/"], "docs/a/b.md")
    assert not allows(["docs/"], "docs")
    assert not allows(["docs/"], "docsx/a")
    assert allows(["a.txt"], "a.txt")
    assert not allows(["a.txt"], "a.txt/b")
    assert allows(["./"], "anything/at/all")
    assert not allows([], "a")


def test_check_writes_sorts_each_path_into_its_reason(tmp_path: Path) -> None:
    cwd = str(tmp_path)
    got = check_writes(["docs/a.md", "b.txt", "../x", "/etc/passwd", "docs/../c.txt", ""], cwd=cwd,
                       scope=["docs/", "b.txt"])
    assert [(v.path, v.why) for v in got] == [
        ("../x", "escapes_cwd"), ("/etc/passwd", "escapes_cwd"), ("docs/../c.txt", "outside_scope"),
        ("", "unusable")]
    assert got[2].message == "c.txt (outside the write paths)"
    assert got[0].resolved == str(tmp_path.parent / "x")


def test_an_explorer_or_an_empty_scope_may_write_nothing(tmp_path: Path) -> None:
    got = check_writes(["a.txt"], cwd=str(tmp_path), scope=["./"], role="explorer")
    assert [(v.why, v.message) for v in got] == [("read_only", "a.txt (an explorer may not write files)")]
    got = check_writes(["a.txt"], cwd=str(tmp_path), scope=[])
    assert got[0].message == "a.txt (this assignment may not write files)"


def test_relative_paths_resolve_against_the_tools_cwd(tmp_path: Path) -> None:
    sub = tmp_path / "docs"
    sub.mkdir()
    assert check_writes(["a.md"], cwd=str(tmp_path), scope=["docs/"], tool_cwd=str(sub)) == []
    assert check_writes(["a.md"], cwd=str(tmp_path), scope=["docs/"])[0].why == "outside_scope"


def test_a_symlink_inside_the_scope_does_not_widen_it(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    (cwd / "docs").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (cwd / "docs" / "out").symlink_to(tmp_path / "elsewhere")
    (cwd / "docs" / "readme.md").symlink_to(cwd / "secret.txt")
    got = check_writes(["docs/out/x.txt", "docs/readme.md", "docs/fine.md"], cwd=str(cwd), scope=["docs/"])
    assert [(v.path, v.why) for v in got] == [("docs/out/x.txt", "symlink"), ("docs/readme.md", "symlink")]
    assert str(tmp_path / "elsewhere" / "x.txt") in got[0].message
    assert check_writes(["docs/out/x.txt"], cwd=str(cwd), scope=["docs/"], follow_links=False) == []


def test_a_symlinked_cwd_and_scope_entries_are_compared_by_their_real_paths(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "shared").mkdir(parents=True)
    (real / "docs").symlink_to(real / "shared")
    (tmp_path / "alias").symlink_to(real)
    assert check_writes(["docs/a.md", "shared/b.md"], cwd=str(tmp_path / "alias"), scope=["docs/", "shared/"]) == []
    got = check_writes(["shared/b.md"], cwd=str(tmp_path / "alias"), scope=["docs/"])
    assert [v.why for v in got] == ["outside_scope"]


segments = st.lists(st.sampled_from(["a", "b", "docs", "..", ".", "", "x.txt"]), min_size=1, max_size=6)
scopes = st.lists(st.sampled_from(["docs/", "a/", "x.txt", "a/x.txt", "./"]), max_size=3)


@given(segments, scopes, st.booleans())
def test_an_allowed_path_always_lands_inside_the_cwd_and_the_scope(parts: list[str], scope: list[str],
                                                                   absolute: bool) -> None:
    cwd = "/w/cwd"
    path = "/".join(parts)
    if absolute:
        path = posixpath.join(cwd, path)
    violations = check_writes([path], cwd=cwd, scope=scope, follow_links=False)
    full = posixpath.normpath(posixpath.join(cwd, path))
    rel = relative_to(cwd, full)
    if violations:
        [v] = violations
        assert v.why in {"unusable", "read_only", "escapes_cwd", "outside_scope"}
        if v.why == "escapes_cwd":
            assert not full.startswith(cwd + "/")
    else:
        assert full.startswith(cwd + "/")
        assert rel is not None
        assert allows(scope, rel)
        assert ".." not in rel.split("/")


@given(st.text(max_size=60), st.lists(st.text(max_size=20), max_size=4))
def test_any_text_is_checked_without_raising(path: str, scope: list[str]) -> None:
    norm = normalize_scope(scope, "/w/cwd", follow_links=False)
    result = check_writes([path], cwd="/w/cwd", scope=norm.entries, follow_links=False)
    assert len(result) <= 1
    assert len(norm.entries) + len(norm.problems) <= len(scope)
    for entry in norm.entries:  # the normal form: relative, no . or .. parts, "./" for the whole cwd
        assert entry == "./" or not set(entry.rstrip("/").split("/")) & {"", ".", ".."}


@given(st.text(max_size=300))
def test_patch_paths_never_raise_and_every_path_comes_from_a_header(text: str) -> None:
    for path in patch_paths(text):
        assert path
        assert "\n" not in path


def test_real_files_written_outside_are_reported_with_their_real_location(tmp_path: Path) -> None:
    os.symlink("/", tmp_path / "root")
    got = check_writes(["root/etc/x"], cwd=str(tmp_path), scope=["./"])
    assert got[0].why == "symlink"
    assert got[0].message == "root/etc/x (a symlink leads it to /etc/x)"


# Codex's apply_patch parser (0.169) trims each hunk header of Unicode whitespace, so these are all
# headers Codex applies; each path must be judged.
@pytest.mark.parametrize(
    "line",
    ["  *** Add File: ../x", "\t*** Add File: ../x", "\u00a0*** Add File: ../x", "\u3000*** Add File: ../x\u2003",
     "\x0b*** Add File: ../x", " *** Delete File: ../x", "\t\t*** Update File: ../x"],
)
def test_every_header_form_codex_accepts_is_judged(line: str) -> None:
    patch = f"*** Begin Patch\n*** Add File: docs/ok.md\n+fine\n{line}\n+pwned\n*** End Patch\n"
    assert "../x" in patch_writes(patch).paths


def test_a_move_is_judged_as_written_and_trimmed() -> None:
    got = patch_writes("*** Begin Patch\n*** Update File: a\n*** Move to: ../b \n@@\n-x\n+y\n*** End Patch").paths
    assert {"../b ", "../b"} <= set(got)


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ("*** Begin Patch\n***Add File: ../x\n+a\n*** End Patch", "looks like a file header"),
        ("*** Begin Patch\n*** add file: ../x\n+a\n*** End Patch", "looks like a file header"),
        ("*** Begin Patch\n* ** Update File: ../x\n*** End Patch", "looks like a file header"),
        ("*** Begin Patch\n*** Update File: a\n*** Move to: \n*** End Patch", "names no file"),
        ("".join(f"*** Add File: f{i}\n" for i in range(MAX_PATCH_PATHS + 1)), "more than"),
        ("*** Add File: a\n" + "+" * MAX_PATCH_CHARS, "longer than"),
        (None, "not text"),
    ],
)
def test_a_patch_that_cannot_be_read_with_certainty_has_a_problem_and_no_paths(patch: object, words: str) -> None:
    got = patch_writes(patch)
    assert got.problem is not None
    assert words in got.problem
    assert got.paths == ()


def test_paths_with_unprintable_characters_are_unusable() -> None:
    got = check_writes(["docs/a\u2028/../../x", "docs/\u00a0b"], cwd="/w", scope=["docs/"], follow_links=False)
    assert [v.why for v in got] == ["unusable", "unusable"]


RUST_WS = "".join(chr(c) for c in (*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028,
                                    0x2029, 0x202F, 0x205F, 0x3000))


def codex_hunk_paths(patch: str) -> list[str] | None:
    """A port of Codex's apply_patch parser (lenient mode, 0.169) for the test oracle: the paths it would
    write, or None when Codex refuses the patch."""
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in patch.strip(RUST_WS).split("\n")]
    if len(lines) >= 4 and lines[0] in ("<<EOF", "<<'EOF'", '<<"EOF"') and lines[-1].endswith("EOF"):
        lines = lines[1:-1]
    if len(lines) < 2 or lines[0].strip(RUST_WS) != "*** Begin Patch" or lines[-1].strip(RUST_WS) != "*** End Patch":
        return None
    rest, out = lines[1:-1], []
    while rest:
        first = rest[0].strip(RUST_WS)
        if first.startswith("*** Add File: "):
            out.append(first[len("*** Add File: "):])
            n = 1
            while n < len(rest) and rest[n].startswith("+"):
                n += 1
        elif first.startswith("*** Delete File: "):
            out.append(first[len("*** Delete File: "):])
            n = 1
        elif first.startswith("*** Update File: "):
            out.append(first[len("*** Update File: "):])
            n = 1
            if n < len(rest) and rest[n].startswith("*** Move to: "):
                out.append(rest[n][len("*** Move to: "):])
                n += 1
            chunks = 0
            while n < len(rest):
                if not rest[n].strip(RUST_WS):
                    n += 1
                    continue
                if rest[n].startswith("*"):
                    break
                start = 1 if rest[n] == "@@" or rest[n].startswith("@@ ") else 0
                if start == 0 and chunks:
                    return None
                taken = 0
                for ln in rest[n + start:]:
                    if ln == "*** End of File":
                        taken += 1
                        break
                    if ln[:1] in ("", " ", "+", "-"):
                        taken += 1
                        continue
                    if taken == 0:
                        return None
                    break
                if taken == 0:
                    return None
                n += start + taken
                chunks += 1
            if not chunks:
                return None
        else:
            return None
        rest = rest[n:]
    return out


HEADER = st.sampled_from(["*** Add File: ", "*** Delete File: ", "*** Update File: ", "*** Move to: "])
PAD = st.text(alphabet=" \t\x0b\x0c\u00a0\u2003\u3000", max_size=3)
BODY = st.sampled_from(["+x", "-x", " x", "@@", "@@ ctx", "", "*** End of File", "y"])
PATH = st.sampled_from(["a", "../b", "docs/c", "/etc/d"])


@st.composite
def patches(draw: st.DrawFn) -> str:
    lines = ["*** Begin Patch"]
    for _ in range(draw(st.integers(1, 4))):
        lines.append(draw(PAD) + draw(HEADER) + draw(PATH) + draw(PAD))
        lines += draw(st.lists(BODY, max_size=3))
    lines.append("*** End Patch")
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines)


@given(patches())
def test_every_path_codex_would_write_is_judged_or_the_patch_is_refused(patch: str) -> None:
    codex = codex_hunk_paths(patch)
    got = patch_writes(patch)
    if codex is not None and got.problem is None:
        assert set(codex) <= set(got.paths), (codex, got)


@pytest.mark.parametrize("sep", ["\x1c", "\x1d", "\x1e", "\x1f"])
def test_a_header_is_trimmed_as_rust_trims_it_so_the_judged_path_is_the_one_codex_writes(
        tmp_path: Path, sep: str) -> None:
    """Python's `str.strip` drops U+001C..U+001F, Rust's `str::trim` keeps them: Codex writes
    `src/a.py<US>`, a file outside the scope, so that is the path judged (and refused)."""
    from fleet.work.scope import check_writes

    writes = patch_writes(f"*** Begin Patch\n*** Add File: src/a.py{sep}\n+x\n*** End Patch\n")
    assert writes.paths == (f"src/a.py{sep}",)
    assert check_writes(writes.paths, cwd=str(tmp_path), scope=["src/a.py"])
