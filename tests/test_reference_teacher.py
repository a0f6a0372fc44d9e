"""The rule-based reference teacher: verdicts, the step it names and its refined answers, on generated questions
with hand-made drafts (right; wrong at step k; stopping before the final answer; right answer, wrong step)."""

from __future__ import annotations

import json

import pytest

from cgd import schema
from cgd.answers import answers_match
from datasets_builders.backends.reference_teacher import (
    MODEL_NAME,
    ReferenceTeacherBackend,
    judge,
    parse_worked_solution,
    write_critique,
    write_refined,
)

try:
    from cgd.verdict import parse_verdict
except ImportError:  # before the verdict parser moved into the core
    from datasets_builders.verdict import parse_verdict

GSM8K_STYLE = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)


def _questions(n: int = 60) -> list[dict]:
    try:
        from cgd.demo.questions import generate_splits
    except ImportError:
        from cgd.questions import generate_splits
    return generate_splits(n, 0, seed=11)["train"]


def _cases() -> list[tuple[dict, object]]:
    """Generated questions whose step values are distinct, absent from the question and != the answer
    before the last step (so a draft that stops early cannot hit the answer or a later step by chance)."""
    out = []
    for row in _questions():
        sol = parse_worked_solution(row["solution"])
        values = [s.value for s in sol.steps]
        qnums = set(__import__("re").findall(r"\d+", row["question"]))
        if len(set(values)) == len(values) and not any(s.result.lstrip("$") in qnums for s in sol.steps):
            out.append((row, sol))
    return out


def _judge_all(question: str, draft: str, sol):
    j = judge(question, draft, sol)
    critique, refined = write_critique(j, sol), write_refined(draft, j, sol)
    return j, critique, refined


def test_worked_solutions_parse_into_their_steps():
    sol = parse_worked_solution(GSM8K_STYLE)
    assert [s.equation for s in sol.steps] == ["48/2 = 24", "48+24 = 72"] and sol.answer == "72"
    assert "<<" not in sol.text and sol.text.endswith("The answer is \\boxed{72}.")
    rows = _questions()
    assert {r["category"] for r in rows} >= {"multi_step", "money", "percentage", "equation", "sharing"}
    for row in rows:
        sol = parse_worked_solution(row["solution"])
        assert sol.answer == row["answer"], row
        assert sol.steps[-1].value == int(row["answer"]) and sol.steps[-1].expression, row["solution"]
        assert answers_match(sol.text, row["answer"])
    eq = parse_worked_solution("Subtract 2 from both sides: 11x = 134 − 2 = 132. Divide by 11: x = 132 / 11 = 12.")
    assert [s.equation for s in eq.steps] == ["134 − 2 = 132", "132 / 11 = 12"]
    bare = parse_worked_solution("42")  # no worked steps: the final answer is the one step
    assert [s.equation for s in bare.steps] == ["42"] and bare.text == "\\boxed{42}"


def test_right_draft_is_called_right_and_kept_as_the_refined_answer():
    cases = _cases()
    assert len(cases) >= 30
    for row, sol in cases:
        draft = (
            "Let me work it out. "
            + " ".join(f"We get {s.equation}." for s in sol.steps)
            + (f" So the answer is {sol.answer}.")
        )
        j, critique, refined = _judge_all(row["question"], draft, sol)
        assert j.right and j.step is None, (draft, j)
        assert parse_verdict(critique) == "right" and critique.endswith("Conclusion: right")
        assert refined.startswith(draft) and refined.endswith(f"\\boxed{{{sol.answer}}}.")
        assert answers_match(refined, row["answer"])


@pytest.mark.parametrize("offset", [1, -1, 10])
def test_draft_wrong_at_step_k_names_step_k_and_its_correct_form(offset):
    checked = 0
    for row, sol in _cases():
        for k, step in enumerate(sol.steps, start=1):
            wrong = step.value + offset
            if wrong < 0 or wrong in {s.value for s in sol.steps}:
                continue
            before = " ".join(f"{s.equation}." for s in sol.steps[: k - 1])
            draft = f"{before} {step.expression} = {wrong}. So the answer is \\boxed{{{wrong}}}."
            j, critique, refined = _judge_all(row["question"], draft, sol)
            assert not j.right and j.kind == "wrong" and j.step.index == k, (draft, j)
            assert f"step {k} of {len(sol.steps)}" in critique and f"correct step is {step.equation}" in critique
            assert f"{step.expression} = {wrong}" in critique
            assert parse_verdict(critique) == "wrong"
            assert answers_match(refined, row["answer"]) and refined == sol.text
            checked += 1
    assert checked >= 60


def test_draft_without_a_final_answer_names_the_first_step_it_leaves_out():
    checked = 0
    for row, sol in _cases():
        for k in range(1, len(sol.steps) + 1):  # stops before step k
            done = " ".join(f"First, {s.equation}." for s in sol.steps[: k - 1])
            draft = f"{done} Next we need to think about what the question asks".strip()
            j, critique, refined = _judge_all(row["question"], draft, sol)
            assert not j.right and j.stated_answer is None, (draft, j)
            assert j.kind == "missing" and j.step.index == k, (draft, j)
            assert "does not state a final answer" in critique and f"step {k} of" in critique
            assert f"correct step is {sol.steps[k - 1].equation}" in critique
            assert parse_verdict(critique) == "wrong" and answers_match(refined, row["answer"])
            checked += 1
    assert checked >= 60


def test_right_answer_with_a_wrong_step_is_right_but_the_step_is_named_and_not_kept():
    checked = 0
    for row, sol in _cases():
        if len(sol.steps) < 2:
            continue
        k = 1
        first = sol.steps[0]
        rest = " ".join(f"{s.equation}." for s in sol.steps[1:])
        draft = f"{first.expression} = {first.value + 3}. {rest} The answer is \\boxed{{{sol.answer}}}."
        j, critique, refined = _judge_all(row["question"], draft, sol)
        assert j.right and j.kind == "wrong" and j.step.index == k, (draft, j)
        assert parse_verdict(critique) == "right"
        assert "is correct" in critique and f"the correct step is {first.equation}" in critique
        assert refined == sol.text and answers_match(refined, row["answer"])  # the flawed draft is not the target
        checked += 1
    assert checked >= 20


def test_wrong_final_answer_after_right_steps_and_gsm8k_drafts():
    sol = parse_worked_solution(GSM8K_STYLE)
    q = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
    j, critique, refined = _judge_all(q, "48/2 = 24 and 48 + 24 = 72, so the answer is \\boxed{70}.", sol)
    assert not j.right and j.kind == "final" and j.stated_answer == "70"
    assert "final answer, 70, is wrong" in critique and parse_verdict(critique) == "wrong"
    j, critique, _ = _judge_all(q, "She sold 48 / 2 = 20 in May, so 68 in total. Answer: 68", sol)
    assert j.kind == "wrong" and j.step.index == 1 and "the correct step is 48/2 = 24" in critique
    j, critique, _ = _judge_all(q, "In May 0.5 * 48 = 20 clips, 68 in all.", sol)  # other numbers, same value
    assert j.kind == "wrong" and j.step.index == 1 and j.draft_equation == "0.5 * 48 = 20"
    assert "does not state a final answer (its last result is 68)" in critique
    j, critique, refined = _judge_all(q, "May: 24 clips. Total 72.", sol)  # right, unboxed
    assert j.right and refined.endswith("The answer is \\boxed{72}.") and answers_match(refined, "72")


def test_backend_serves_each_stage_from_the_row_and_refuses_rows_without_a_reference():
    from datasets_builders.backends import Request, Sampling

    row = _questions(1)[0]
    fields = {"question": row["question"], "reference_answer": row["solution"], "initial_response": "It is 3."}
    got = {}
    for stage in ("critique", "refine", "direct"):
        ReferenceTeacherBackend(stage).generate(
            [Request("r1", "ignored prompt", None, fields)], Sampling(n=2), lambda r, c, s=stage: got.update({s: c})
        )
    assert [c.finish_reason for c in got["critique"]] == ["stop", "stop"]
    assert parse_verdict(got["critique"][0].text) == "wrong"
    assert got["refine"][0].text == got["direct"][0].text == parse_worked_solution(row["solution"]).text
    from datasets_builders.backends import BackendError

    delivered = []
    with pytest.raises(BackendError, match="answer_column"):
        ReferenceTeacherBackend("critique").generate(
            [Request("a", "x", None, fields), Request("b", "x", None, {**fields, "reference_answer": None})],
            Sampling(),
            lambda r, c: delivered.append(r.id),
        )
    assert delivered == []  # checked before any row is written
    with pytest.raises(ValueError, match="probe"):
        ReferenceTeacherBackend("probe")


# -- in the builder ---------------------------------------------------------------------------------------------


@pytest.fixture()
def embedded_file(tmp_path):
    path = tmp_path / "embedded.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _questions(24)))
    return path


def _build_args(source, out, *extra):
    return [
        "--source", str(source), "--id_column", "id", "--answer_column", "solution", "--student_model", "stu",
        "--backend", "dry_run", "--critique_backend", "reference", "--refine_backend", "reference",
        "--direct_enabled", "true", "--direct_backend", "reference", "--output_dir", str(out), "--progress", "false",
        *extra,
    ]  # fmt: skip


def test_build_with_the_reference_teacher_is_right_resumes_and_names_it(embedded_file, tmp_path):
    import datasets

    from datasets_builders.build_cgd import Builder
    from datasets_builders.config import parse_args

    out = tmp_path / tmp_path.name
    report = Builder(parse_args(_build_args(embedded_file, out))).run()
    assert (
        report["stages"]["critique"]["model"] == MODEL_NAME and report["stages"]["critique"]["backend"] == "reference"
    )
    quality = report["teacher_quality"]["generated"]
    assert quality["rows_with_reference"] == 24
    for key in ("verdict_accuracy", "refined_accuracy", "direct_accuracy"):
        assert quality[key]["correct"] == quality[key]["n"] == 24, key
    rows = datasets.load_dataset(str(out), split="train").to_list()
    assert len(rows) == 24 and {r[schema.TEACHER_MODEL] for r in rows} == {MODEL_NAME}
    assert all(r[schema.VERDICT] in ("right", "wrong") for r in rows)
    card = (out / "README.md").read_text()
    assert "The teacher is rule-based" in card and "| verdict accuracy | 24/24 = 100.0%" in card
    assert "The teacher is rule-based" in (out / "build_report.md").read_text()

    again = Builder(parse_args(_build_args(embedded_file, out))).run()  # resumes: nothing is regenerated
    assert all(r["requests"] == 0 and r["resumed"] == 24 for r in again["this_run"].values())


def test_reference_teacher_refuses_a_source_without_worked_solutions_before_the_probe(tmp_path):
    from datasets_builders.build_cgd import Builder
    from datasets_builders.config import parse_args

    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "1+1?"}) + "\n" + json.dumps({"id": "b", "question": "2+2?"}))
    out = tmp_path / "out"
    args = [a for a in _build_args(path, out) if a not in ("--answer_column", "solution")]
    with pytest.raises(ValueError, match=r"2 of 2 have none .*answer_column"):
        Builder(parse_args(args)).run()
    assert not (out / "checkpoints").exists()


def test_reference_backend_config_rules():
    from datasets_builders.config import parse_args, resolve_stages

    base = ["--source", "x.jsonl", "--student_model", "stu", "--backend", "dry_run"]
    specs = resolve_stages(parse_args([*base, "--critique_backend", "reference", "--refine_backend", "reference"]))
    assert [s.model for s in specs] == ["stu", MODEL_NAME, MODEL_NAME]  # no teacher_model needed
    with pytest.raises(ValueError, match="probe stage cannot use the reference backend"):
        parse_args([*base, "--probe_backend", "reference", "--teacher_model", "t"])
    with pytest.raises(ValueError, match="unset `critique_model`"):
        parse_args([*base, "--teacher_model", "t", "--critique_backend", "reference", "--critique_model", "big"])
