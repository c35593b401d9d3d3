"""The assignment prompt: what it states, its limits, and user templates."""

from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.errors import ConfigError, InvalidInput, TextTooLong
from fleet.prompttext import MAX_TASK_CHARS, forbidden
from fleet.work.prompt import (
    MAX_PROMPT_CHARS,
    PromptSpec,
    check_template,
    default_template,
    load_template,
    mention,
    render_prompt,
)
from fleet.work.report import extract_report

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
AS_ID = "as-01JABCDEFGHJKMNPQRSTVWXYZ0"


def spec(**kw: object) -> PromptSpec:
    base: dict[str, object] = {"assignment_id": AS_ID, "task": "Turn the spec into docs/spec.pdf.", "cwd": "/w/cwd"}
    return PromptSpec(**{**base, **kw})  # type: ignore[arg-type]


def test_the_prompt_states_id_task_scope_skills_deadline_checks_and_contract() -> None:
    text = render_prompt(spec(write_paths=("docs/", "README.md"), read_paths=("src/",), skills=("pdf", "demo:hello"),
                              checks=("pytest -q",), deadline=NOW + 5400), now=NOW)
    assert text.startswith(f"Assignment {AS_ID} from fleet.\n\nTask:\nTurn the spec into docs/spec.pdf.\n")
    assert "only these paths (relative to /w/cwd" in text
    assert "\n- docs/\n- README.md\n" in text
    assert "Read only what you need from these paths (relative to /w/cwd):\n- src/" in text
    assert "Use these skills: $pdf, $demo:hello." in text
    assert "Deadline: 2027-01-15T09:30:00Z, 1h30m from now." in text
    assert "fleet runs these checks in /w/cwd; the work is accepted only if all pass:\n- `pytest -q`" in text
    assert "```fleet-report\n{" in text
    assert "\n\n\n" not in text


def test_the_example_report_in_the_prompt_is_itself_valid() -> None:
    assert extract_report(render_prompt(spec(), now=NOW)).ok


def test_a_read_only_assignment_says_so_and_omits_empty_parts() -> None:
    text = render_prompt(spec(role="explorer", write_paths=("docs/",)), now=NOW)
    assert "Do not create, change or delete any file: this assignment is read-only." in text
    assert "You may read anything in your working directory /w/cwd." in text
    assert "Use these skills" not in text
    assert "Deadline" not in text
    assert "checks" not in text
    assert "\n\n\n" not in text


def test_the_whole_cwd_scope_and_a_local_deadline_read_naturally() -> None:
    cet = timezone(timedelta(hours=1), "CET")
    text = render_prompt(spec(write_paths=("./",), deadline=NOW + 60), now=NOW, tz=cet)
    assert "anywhere in your working directory /w/cwd" in text
    assert "Deadline: 2027-01-15T08:01:00Z (2027-01-15 09:01 CET local), 1m from now." in text
    assert "already passed" in render_prompt(spec(deadline=NOW - 5), now=NOW)


def test_a_skill_name_codex_cannot_mention_is_named_in_words() -> None:
    assert mention("pdf-tool") == "$pdf-tool"
    assert mention("plugin:skill_2") == "$plugin:skill_2"
    assert mention("has space") == 'the skill "has space"'
    assert mention("v1.2") == 'the skill "v1.2"'


def test_the_task_keeps_its_own_blank_lines_and_dollars() -> None:
    task = "Step one.\n\n\n\nStep two costs $5 and ${HOME} stays literal."
    assert task in render_prompt(spec(task=task), now=NOW)


@pytest.mark.parametrize(
    ("kw", "err", "match"),
    [({"task": "  \n "}, InvalidInput, "empty"),
     ({"task": "x" * (MAX_TASK_CHARS + 1)}, TextTooLong, "limit is 16000"),
     ({"task": "a\x00b"}, InvalidInput, "NUL"),
     ({"skills": tuple(f"s{i}" for i in range(33))}, InvalidInput, "limit is 32"),
     ({"checks": ("",)}, InvalidInput, "non-empty"),
     ({"write_paths": tuple(f"dir{i:04d}/" + "x" * 300 for i in range(64)), "task": "t" * 9000},
      TextTooLong, f"limit is {MAX_PROMPT_CHARS}")],
)
def test_limits_are_enforced_with_clear_errors(kw: dict[str, object], err: type[Exception], match: str) -> None:
    with pytest.raises(err, match=match):
        render_prompt(spec(**kw), now=NOW)


def test_a_user_template_is_checked_and_used(tmp_path: Path) -> None:
    path = tmp_path / "t.md"
    path.write_text("Job ${assignment_id}: ${task}\nCost: $$0\n${report_contract}\n")
    template = load_template(path)
    text = render_prompt(spec(), now=NOW, template=template)
    assert text.startswith(f"Job {AS_ID}: Turn the spec")
    assert "Cost: $0" in text


@pytest.mark.parametrize(
    ("text", "match"),
    [("${task} ${report_contract}", r"missing \$\{assignment_id\}"),
     ("${assignment_id} ${task} ${report_contract} ${owner}", "unknown placeholder"),
     ("${assignment_id} ${task} ${report_contract} costs $ 5", "not a placeholder")],
)
def test_a_bad_template_is_refused_naming_the_file(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        check_template(text, "/x/t.md")
    assert "/x/t.md" in info.value.message


def test_an_unreadable_or_huge_template_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_template(tmp_path / "missing.md")
    big = tmp_path / "big.md"
    big.write_text("${assignment_id}${task}${report_contract}" + "x" * 20000)
    with pytest.raises(ConfigError, match="larger than"):
        load_template(big)


def test_the_packaged_template_passes_its_own_check() -> None:
    check_template(default_template(), "package")
    assert load_template(None) == default_template()


@given(st.text(min_size=1, max_size=300).filter(lambda t: t.strip() and not any(forbidden(c) for c in t)),
       st.lists(st.sampled_from(["docs/", "a.txt", "src/x/"]), unique=True, max_size=3),
       st.lists(st.text(alphabet="abc-:_", min_size=1, max_size=8), unique=True, max_size=3),
       st.none() | st.floats(NOW - 100, NOW + 86400 * 30))
def test_any_task_renders_within_the_cap_with_its_text_intact(task: str, writes: list[str], skills: list[str],
                                                              deadline: float | None) -> None:
    text = render_prompt(spec(task=task, write_paths=tuple(writes), skills=tuple(skills), deadline=deadline), now=NOW)
    assert len(text) <= MAX_PROMPT_CHARS
    assert task.strip("\n\r ") in text
    assert AS_ID in text
    for s in skills:
        assert f"${s}" in text


def test_the_prompt_states_the_budget_what_counts_and_what_happens_past_it() -> None:
    text = render_prompt(spec(budget=200_000), now=NOW)
    assert "Token budget: 200k tokens (200000), counted as input plus output tokens (cached input included)" in text
    assert "the assignment fails as over_budget" in text
    assert text.index("Token budget") < text.index("```fleet-report")
    assert "Token budget" not in render_prompt(spec(), now=NOW)


@given(st.integers(1, 10**10))
def test_a_user_template_without_the_budget_placeholder_still_states_the_budget(budget: int) -> None:
    template = "Work ${assignment_id}: ${task}\n\n${report_contract}\n"
    check_template(template, "t.md")
    text = render_prompt(spec(budget=budget), now=NOW, template=template)
    assert f"({budget}), counted as input plus output" in text
    assert text.index("Token budget") < text.index("```fleet-report")
    with_placeholder = render_prompt(spec(budget=budget), now=NOW, template="${budget}\n" + template)
    assert with_placeholder.count("Token budget") == 1
