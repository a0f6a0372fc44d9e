"""Teacher quality in the build report and card: verdict accuracy, refined-answer accuracy, verdict mix, intervals."""

from __future__ import annotations

import json
import re

import pytest

from cgd import schema
from cgd.stats import wilson_interval
from datasets_builders.build_cgd import Builder
from datasets_builders.config import parse_args, resolve_stages
from datasets_builders.quality import summarize, teacher_quality


def test_wilson_interval_matches_known_values():
    lo, hi = wilson_interval(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and round(hi, 4) == 0.2775
    lo, hi = wilson_interval(10, 10)
    assert round(lo, 4) == 0.7225 and hi == 1.0
    assert wilson_interval(0, 0) is None


def _row(rid, draft, verdict, refined, reference="#### 7"):
    return {
        schema.ID: rid,
        schema.INITIAL_RESPONSE: draft,
        schema.VERDICT: verdict,
        schema.REFINED_RESPONSE: refined,
        schema.REFERENCE_ANSWER: reference,
        schema.TEACHER_ANSWER: None,
    }


def test_summary_counts_every_cell_and_treats_unparsed_as_a_miss():
    rows = [
        _row("a", "\\boxed{7}", "right", "\\boxed{7}"),  # right draft, right verdict
        _row("b", "\\boxed{7}", "wrong", "\\boxed{8}"),  # right draft, wrong verdict
        _row("c", "\\boxed{6}", "wrong", "\\boxed{7}"),  # wrong draft, right verdict
        _row("d", "\\boxed{6}", "unparsed", "\\boxed{7}"),  # unparsed: a miss
        _row("e", "\\boxed{6}", "right", "", reference=None),  # no reference: not counted
    ]
    quality = teacher_quality(rows, rows[:2])
    gen = quality["generated"]
    assert gen["rows"] == 5 and gen["rows_with_reference"] == 4
    assert gen["verdict_accuracy"]["correct"] == 2 and gen["verdict_accuracy"]["n"] == 4
    assert gen["verdict_accuracy_parsed"]["n"] == 3
    assert gen["refined_accuracy"]["correct"] == 3 and gen["student_accuracy"]["correct"] == 2
    assert gen["verdict_mix"] == {
        "right": {"draft_right": 1, "draft_wrong": 0},
        "wrong": {"draft_right": 1, "draft_wrong": 1},
        "unparsed": {"draft_right": 0, "draft_wrong": 1},
    }
    assert quality["written"]["verdict_accuracy"]["n"] == 2 and gen["direct_accuracy"] is None
    assert teacher_quality([rows[-1]], [rows[-1]]) is None
    assert summarize([], {})["verdict_accuracy"]["rate"] is None


# -- end to end: the dry-run teacher's random verdicts, counted independently -------------------------------------

_BOXED = re.compile(r"\\boxed\{(\d+)\}")


def _args(source, out, *extra):
    return [
        "--source", str(source), "--id_column", "id", "--student_model", "stu", "--teacher_model", "tea",
        "--backend", "dry_run", "--direct_enabled", "true", "--output_dir", str(out), "--progress", "false", *extra,
    ]  # fmt: skip


def _write(path, answers):
    path.write_text(
        "".join(json.dumps({"id": f"q{i}", "question": f"Question {i}?", "answer": a}) + "\n" for i, a in answers)
    )


def test_report_verdict_accuracy_equals_an_independent_count(tmp_path):
    import datasets

    source = tmp_path / "questions.jsonl"
    _write(source, [(i, "#### 1000") for i in range(40)])
    first = tmp_path / "first"
    Builder(parse_args(_args(source, first))).run()
    drafts = {r["source_id"]: r for r in datasets.load_dataset(str(first), split="train").to_list()}
    # Same file name and ids, so the same drafts: make every other draft right and keep the rest wrong.
    answers = []
    for i in range(40):
        drafted = int(_BOXED.search(drafts[f"q{i}"][schema.INITIAL_RESPONSE]).group(1))
        answers.append((i, f"#### {drafted if i % 2 == 0 else drafted + 1}"))
    _write(source, answers)
    out = tmp_path / "second"
    report = Builder(parse_args(_args(source, out, "--check_refined_answer", "true"))).run()

    assert report["stages"]["critique"]["rows"] == 40
    rows = []  # the dry-run outputs depend on the row id only: the first build's rows are the second's
    for i, line in enumerate(source.read_text().splitlines()):
        gold = int(json.loads(line)["answer"].split("####")[1])
        row = drafts[f"q{i}"]
        draft_right = int(_BOXED.search(row[schema.INITIAL_RESPONSE]).group(1)) == gold
        verdict = re.search(r"Conclusion: (right|wrong)\s*$", row[schema.CRITIQUE]).group(1)
        refined_right = int(_BOXED.search(row[schema.REFINED_RESPONSE]).group(1)) == gold
        direct_right = int(_BOXED.search(row[schema.TEACHER_ANSWER]).group(1)) == gold
        rows.append((draft_right, verdict, refined_right, direct_right))
    gen = report["teacher_quality"]["generated"]
    assert gen["student_accuracy"]["correct"] == sum(d for d, *_ in rows) == 20
    expected = sum((v == "right") == d for d, v, *_ in rows)
    assert 0 < expected < 40  # the dry-run verdicts are a coin toss: both kinds of miss occur
    assert gen["verdict_accuracy"] == {
        "correct": expected,
        "n": 40,
        "rate": round(expected / 40, 4),
        "ci95": [round(x, 4) for x in wilson_interval(expected, 40)],
    }
    assert gen["refined_accuracy"]["correct"] == sum(r for *_, r, _ in rows)
    assert gen["direct_accuracy"]["correct"] == sum(d for *_, d in rows)
    for verdict in ("right", "wrong"):
        for truth in (True, False):
            cell = gen["verdict_mix"][verdict]["draft_right" if truth else "draft_wrong"]
            assert cell == sum(d == truth and v == verdict for d, v, *_ in rows)
    written = report["teacher_quality"]["written"]  # check_refined_answer keeps only right refined answers
    assert written["refined_accuracy"]["correct"] == written["refined_accuracy"]["n"] == report["output"]["rows"]
    pct = f"{100 * expected / 40:.1f}%"
    for text in ((out / "README.md").read_text(), (out / "build_report.md").read_text()):
        assert "### Teacher quality" in text and f"| verdict accuracy | {expected}/40 = {pct}" in text


def test_source_without_references_says_so(tmp_path):
    source = tmp_path / "q.jsonl"
    source.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Q{i}?"}) + "\n" for i in range(3)))
    report = Builder(parse_args(_args(source, tmp_path / "out"))).run()
    assert report["teacher_quality"] is None
    assert "verdicts were not checked" in (tmp_path / "out" / "README.md").read_text()


def test_teacher_sees_reference_shows_it_in_critique_and_refine_prompts_only(tmp_path):
    from datasets_builders.stages import build_request

    base = ["--source", "x.jsonl", "--student_model", "s", "--teacher_model", "t", "--backend", "dry_run"]
    specs = {s.name: s for s in resolve_stages(parse_args([*base, "--direct_enabled", "true"]))}
    assert all("{reference_answer}" not in s.template for s in specs.values())  # off by default, as in the paper
    shown = {
        s.name: s
        for s in resolve_stages(parse_args([*base, "--direct_enabled", "true", "--teacher_sees_reference", "true"]))
    }
    unit = {schema.ID: "r", "question": "Q?", "reference_answer": "GOLD-42", "initial_response": "d", "critique": "c"}
    assert {n for n, s in shown.items() if "GOLD-42" in build_request(s, unit).user} == {"critique", "refine"}
    assert shown["critique"].fingerprint() != specs["critique"].fingerprint()  # a resume with it changed is refused
    with pytest.raises(ValueError, match=r"critique_template.*reference_answer"):
        parse_args([*base, "--teacher_sees_reference", "true", "--critique_template", "{question} {initial_response}"])
    source = tmp_path / "q.jsonl"
    source.write_text(json.dumps({"id": "a", "question": "Q?"}) + "\n")
    with pytest.raises(ValueError, match="teacher_sees_reference"):
        Builder(parse_args(_args(source, tmp_path / "o", "--teacher_sees_reference", "true"))).run()
