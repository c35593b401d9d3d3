"""The worktree commands of the `fleet` CLI: diff, merge, worktrees and worktree-prune.

Same conventions as every command (`fleet.cli.base`): one registry operation each, `--json` prints
one JSON document, errors go through the one renderer. A diff's patch is the agent's work: it is
printed through the escaping stdout like any agent text.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .base import HolderOpt, JsonOpt, run


def diff_cmd(
    assignment: Annotated[str, typer.Argument(help="Assignment id (as-...).")],
    max_bytes: Annotated[int | None, typer.Option(
        "--max-bytes", help="Cut the patch here (default 65536; the stat is always whole).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show what a worktree assignment's branch changes against the commit it started from."""
    def render(r: dict[str, Any]) -> None:
        merged = f", merged as {r['merged_commit'][:12]}" if r.get("merged_commit") else ""
        print(f"{r['assignment']} ({r['state']}{merged}): {r['branch']} {r['base_commit'][:12]}..{r['head'][:12]}")
        print(r["stat"].rstrip("\n") or " (no changes)")
        if r["patch"]:
            print()
            print(r["patch"].rstrip("\n"))

    run("assignment_diff", {"assignment": assignment, "max_bytes": max_bytes}, as_json, render)


def merge_cmd(
    assignments: Annotated[list[str], typer.Argument(help="Verified assignment ids, in merge order.",
                                                     show_default=False)],
    into: Annotated[str | None, typer.Option(
        "--into", help="The branch to merge into (default: the one they started from).")] = None,
    holder: HolderOpt = None, as_json: JsonOpt = False,
) -> None:
    """Merge verified assignments into their base branch; a conflict changes nothing."""
    def render(r: dict[str, Any]) -> None:
        for s in r["steps"]:
            print(f"{s['assignment']}: {s['how']} ({s['commit'][:12]})")
        moved = f"{r['old'][:12]} -> {r['new'][:12]}" if r["old"] != r["new"] else f"unchanged at {r['new'][:12]}"
        print(f"{r['into']}: {moved}")
        for path in r["checkouts"]:
            print(f"  checkout brought along: {path}")
        for err in r["checkout_errors"]:
            print(f"  warning: a checkout was not updated (the branch moved; see `git status` there): {err}")

    run("assignment_merge", {"assignments": assignments, "into": into, "holder": holder}, as_json, render)


def worktrees_cmd(as_json: JsonOpt = False) -> None:
    """List each repo agent's worktree: path, branch, clean/dirty, verified work not merged yet."""
    def render(r: dict[str, Any]) -> None:
        for w in r["worktrees"]:
            gone = "" if w["configured"] else " [agent no longer configured]"
            dirty = f" ({w['dirty_count']} files)" if w["dirty_count"] else ""
            print(f"{w['agent']:<16} {w['state']}{dirty}  {w['branch'] or '(detached)'}  {w['path']}{gone}")
            if w["unmerged"]:
                print(f"  verified, not merged: {' '.join(w['unmerged'])}")
        if not r["worktrees"]:
            print("(no worktrees: no agent has a `repo`)")

    run("worktree_list", {}, as_json, render)


def worktree_prune_cmd(
    force: Annotated[bool | None, typer.Option(
        "--force", help="Also delete unmerged work and uncommitted files.")] = None,
    holder: HolderOpt = None, as_json: JsonOpt = False,
) -> None:
    """Remove worktrees of agents no longer configured and branches of merged or cancelled assignments."""
    def render(r: dict[str, Any]) -> None:
        for path in r["worktrees"]:
            print(f"removed worktree {path}")
        for branch in r["branches"]:
            print(f"deleted branch {branch}")
        for k in r["kept"]:
            print(f"kept {k.get('branch') or k.get('worktree')} ({k['why']})")
        if not (r["worktrees"] or r["branches"]):
            print("Nothing to prune.")

    run("worktree_prune", {"force": force, "holder": holder}, as_json, render)
