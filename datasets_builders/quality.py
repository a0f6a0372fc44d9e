"""Teacher quality, for any teacher, where the source has reference answers: can its critiques be trusted?

Every row with a reference answer is checked with :func:`cgd.answers.answers_match` (the evaluation's
checker): is the student's draft right, is the teacher's refined answer right, is its direct answer right.
From those:

- **verdict accuracy**: the critique's parsed verdict equals the truth about the draft (``right`` for a
  right draft, ``wrong`` for a wrong one; an ``unparsed`` verdict counts as a miss);
- **refined-answer accuracy** (and direct-answer accuracy when the direct stage ran);
- **verdict mix**: verdict (right / wrong / unparsed) against the draft being right or wrong, as counts.

Rates carry a 95% Wilson score interval. They are given for the rows generated (before filters: the
teacher's own quality) and for the rows written (what training sees). The build report and the card hold
them (``teacher_quality``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cgd import schema
from cgd.stats import wilson_interval


def rate(successes: int, n: int) -> dict[str, Any]:
    """``{"correct", "n", "rate", "ci95"}`` for a count of successes out of n."""
    ci = wilson_interval(successes, n)
    return {
        "correct": successes,
        "n": n,
        "rate": round(successes / n, 4) if n else None,
        "ci95": [round(ci[0], 4), round(ci[1], 4)] if ci else None,
    }


def gold_answer(reference: str, reference_answer_format: str = "auto") -> str:
    """The gold the checker compares with (``final_answer``: the answer stated at the end of the reference)."""
    if reference_answer_format == "final_answer":
        from cgd.answers import extract_final_answer

        return extract_final_answer(reference) or reference
    return reference


def has_reference(row: dict) -> bool:
    return bool(str(row.get(schema.REFERENCE_ANSWER) or "").strip())


def check_row(row: dict, reference_answer_format: str = "auto") -> dict[str, bool | None]:
    """Is the draft / refined answer / direct answer of one row right (None: no reference or no output)."""
    from cgd.answers import answers_match

    if not has_reference(row):
        return {"draft": None, "refined": None, "direct": None}
    gold = gold_answer(str(row[schema.REFERENCE_ANSWER]), reference_answer_format)
    direct = row.get(schema.TEACHER_ANSWER)
    return {
        "draft": answers_match(row.get(schema.INITIAL_RESPONSE) or "", gold),
        "refined": answers_match(row.get(schema.REFINED_RESPONSE) or "", gold),
        "direct": None if direct is None else answers_match(direct, gold),
    }


def summarize(rows: Iterable[dict], checks: dict[str, dict[str, bool | None]]) -> dict[str, Any]:
    """Verdict accuracy, refined/direct accuracy, student accuracy and the verdict mix over ``rows``."""
    rows = list(rows)
    checked = [(r, checks[r[schema.ID]]) for r in rows if checks[r[schema.ID]]["draft"] is not None]
    mix = {v: {"draft_right": 0, "draft_wrong": 0} for v in schema.VERDICTS}
    verdict_ok = drafts_right = refined_right = 0
    direct_right = direct_n = 0
    for row, c in checked:
        truth = "right" if c["draft"] else "wrong"
        mix[row[schema.VERDICT]]["draft_" + truth] += 1
        verdict_ok += row[schema.VERDICT] == truth
        drafts_right += bool(c["draft"])
        refined_right += bool(c["refined"])
        if c["direct"] is not None:
            direct_n += 1
            direct_right += c["direct"]
    n = len(checked)
    parsed = n - sum(mix["unparsed"].values())
    return {
        "rows": len(rows),
        "rows_with_reference": n,
        "student_accuracy": rate(drafts_right, n),
        "verdict_accuracy": rate(verdict_ok, n),
        "verdict_accuracy_parsed": rate(verdict_ok, parsed),
        "refined_accuracy": rate(refined_right, n),
        "direct_accuracy": rate(direct_right, direct_n) if direct_n else None,
        "verdict_mix": mix,
    }


def teacher_quality(
    generated: list[dict], written: list[dict], reference_answer_format: str = "auto"
) -> dict[str, Any] | None:
    """Teacher quality over the generated rows and the written rows; None when no row has a reference."""
    checks = {r[schema.ID]: check_row(r, reference_answer_format) for r in generated}
    if not any(c["draft"] is not None for c in checks.values()):
        return None
    return {
        "checker": "cgd.answers.answers_match",
        "generated": summarize(generated, checks),
        "written": summarize(written, checks),
    }


def _cell(r: dict[str, Any] | None) -> str:
    if not r or not r["n"]:
        return "n/a"
    lo, hi = r["ci95"]
    return f"{r['correct']}/{r['n']} = {100 * r['rate']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def quality_markdown(report: dict[str, Any]) -> list[str]:
    """Markdown lines of the report's ``teacher_quality`` (empty when the source has no reference answers)."""
    quality = report.get("teacher_quality")
    refine = report.get("stages", {}).get("refine", {})
    lines = ["", "### Teacher quality", ""]
    if refine.get("backend") == "reference":
        lines += [
            f"The teacher is rule-based (`{refine.get('model')}`, backend `reference`): no model runs; each "
            "critique names the first step of the source's worked solution that the draft gets wrong or "
            "leaves out, and each refined answer is the draft (when right) or the worked solution. The prompts "
            "above are not used by it.",
            "",
        ]
    if not quality:
        return [*lines, "The source has no reference answers, so the teacher's verdicts were not checked."]
    gen, out = quality["generated"], quality["written"]
    lines += [
        f"Checked against the source's reference answers with `{quality['checker']}` "
        "(95% Wilson intervals in brackets). Verdict accuracy: the critique's verdict is `right` for a right "
        "draft and `wrong` for a wrong one (an unparsed verdict counts as a miss).",
        "",
        "| measure | generated rows (before filters) | written rows |",
        "|---|---|---|",
        f"| student draft right | {_cell(gen['student_accuracy'])} | {_cell(out['student_accuracy'])} |",
        f"| verdict accuracy | {_cell(gen['verdict_accuracy'])} | {_cell(out['verdict_accuracy'])} |",
        f"| verdict accuracy, parsed verdicts only | {_cell(gen['verdict_accuracy_parsed'])} | "
        f"{_cell(out['verdict_accuracy_parsed'])} |",
        f"| refined answer right | {_cell(gen['refined_accuracy'])} | {_cell(out['refined_accuracy'])} |",
    ]
    if gen["direct_accuracy"]:
        lines.append(f"| direct answer right | {_cell(gen['direct_accuracy'])} | {_cell(out['direct_accuracy'])} |")
    lines += [
        "",
        "| verdict (generated rows) | draft right | draft wrong |",
        "|---|---:|---:|",
        *(f"| {v} | {m['draft_right']} | {m['draft_wrong']} |" for v, m in gen["verdict_mix"].items()),
    ]
    skipped = gen["rows"] - gen["rows_with_reference"]
    if skipped:
        lines += ["", f"{skipped} generated rows have no reference answer and are not counted here."]
    return lines


def check_references(specs: list[Any], questions: list[Any], teacher_sees_reference: bool) -> None:
    """Before any generation: a stage that needs reference answers refuses a source that lacks some (SourceError)."""
    needs = [s.name for s in specs if s.backend == "reference"]
    if teacher_sees_reference:
        needs += [s.name for s in specs if s.name in ("critique", "refine") and s.name not in needs]
    if not needs:
        return
    missing = [q.source_id for q in questions if not str(q.reference_answer or "").strip()]
    if missing:
        from datasets_builders.sources import SourceError

        why = "run the reference teacher" if any(s.backend == "reference" for s in specs) else "teacher_sees_reference"
        raise SourceError(
            f"The {', '.join(needs)} stage(s) need a reference answer for every question ({why}), but "
            f"{len(missing)} of {len(questions)} have none (source ids {missing[:5]}). Set `answer_column` to the "
            "source's worked-solution column, or turn that option off."
        )
