"""Write scope: patch paths, normal form, and the lexical and on-disk checks (real temp dirs)."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fleet.work.scope import allows, check_writes, normalize_scope, patch_paths, relative_to

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
