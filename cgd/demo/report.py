"""The demo's held-out report: every metric with a 95% interval, paired differences, and claims stated from the numbers.

Each model's per-question scores come from lighteval's details files (one row per held-out question). A rate gets a
Wilson score interval; a difference between two models is a paired bootstrap over the same questions (resampling
questions, percentile interval), so it reflects how the two models differ on each question rather than two
independent samples. A difference "holds" only when its interval excludes 0. The sentences the report writes are
generated from these numbers, whichever way they fall.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cgd.stats import paired_bootstrap, wilson_interval

#: Per-question metrics of the ``cgd_arith`` task (eval_tasks/cgd_tasks.py), in report order.
METRICS: tuple[str, ...] = ("acc", "boxed_rate", "critique_rate", "verdict_rate")
METRIC_NAMES = {
    "acc": "accuracy",
    "boxed_rate": "boxed-answer rate",
    "critique_rate": "critique-style rate",
    "verdict_rate": "verdict-line rate",
}


@dataclass
class ModelScores:
    """One model's per-question scores on the held-out split (``None`` when its evaluation is missing)."""

    name: str
    per_question: dict[str, dict[str, float]] | None  # question text -> metric -> 0/1
    prompts_cut: int | None = None
    note: str = ""

    @property
    def missing(self) -> bool:
        return self.per_question is None


@dataclass
class Interval:
    value: float
    low: float
    high: float
    n: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


@dataclass
class Comparison:
    """``b − a`` on the questions both models answered."""

    a: str
    b: str
    metric: str
    diff: Interval
    a_value: float
    b_value: float
    claim: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def rate(values: Sequence[float]) -> Interval:
    """Mean of 0/1 values with its Wilson interval (:func:`cgd.stats.wilson_interval`)."""
    n = len(values)
    successes = float(sum(values))
    low, high = wilson_interval(successes, n) or (math.nan, math.nan)
    return Interval(successes / n if n else math.nan, low, high, n)


def paired_difference(a: Sequence[float], b: Sequence[float], num: int = 2000, seed: int = 0) -> Interval:
    """Mean of ``b − a`` over paired questions with its 95% bootstrap interval (:func:`cgd.stats.paired_bootstrap`)."""
    value, low, high = paired_bootstrap(a, b, num, seed) or (math.nan, math.nan, math.nan)
    return Interval(value, low, high, len(a))


def load_details(run_dir: str | Path, task: str = "cgd_arith") -> tuple[dict[str, dict[str, float]], int]:
    """Per-question metrics and the number of cut prompts from the newest lighteval details file of ``task``."""
    import pandas as pd

    files = sorted(Path(run_dir).rglob(f"details_{task}|*.parquet"), key=lambda p: p.name)
    if not files:
        raise FileNotFoundError(f"no lighteval details for {task} under {run_dir}")
    frame = pd.read_parquet(files[-1])
    scores: dict[str, dict[str, float]] = {}
    cut = 0
    for _, row in frame.iterrows():
        doc, metric, response = row["doc"], row["metric"], row["model_response"]
        key = str(doc.get("query"))
        if key in scores:
            raise ValueError(f"{files[-1]}: question repeated in the details: {key[:80]!r}")
        scores[key] = {m: float(metric[m]) for m in METRICS if metric.get(m) is not None}
        cut += int((response or {}).get("truncated_tokens_count") or 0) > 0
    return scores, cut


def compare(a: ModelScores, b: ModelScores, metric: str, num: int = 2000, seed: int = 0) -> Comparison | None:
    """Paired ``b − a`` on ``metric`` over the questions both answered (None when either is missing)."""
    if a.missing or b.missing:
        return None
    shared = sorted(set(a.per_question) & set(b.per_question))
    if not shared:
        return None
    xs = [a.per_question[q][metric] for q in shared]
    ys = [b.per_question[q][metric] for q in shared]
    return Comparison(
        a.name, b.name, metric, paired_difference(xs, ys, num, seed), sum(xs) / len(xs), sum(ys) / len(ys)
    )


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.0f}%"


def _pts(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:+.0f}"


def describe(c: Comparison) -> str:
    """``accuracy 4% → 12% (+8 points, 95% CI +3 to +14)``."""
    d = c.diff
    return (
        f"{METRIC_NAMES[c.metric]} {_pct(c.a_value)} → {_pct(c.b_value)} "
        f"({_pts(d.value)} points, 95% CI {_pts(d.low)} to {_pts(d.high)})"
    )


def direction(c: Comparison) -> str:
    """``higher``, ``lower`` or ``no measurable difference`` (interval including 0)."""
    if c.diff.low > 0:
        return "higher"
    if c.diff.high < 0:
        return "lower"
    return "no measurable difference"


def what_changed(base: ModelScores, trained: ModelScores, num: int = 2000, seed: int = 0) -> str:
    """One sentence on what training changed, from the paired differences (honest whichever way they fall)."""
    if base.missing or trained.missing:
        missing = base.name if base.missing else trained.name
        return f"Nothing can be said about {trained.name} vs {base.name}: the evaluation of {missing} is missing."
    comparisons = [compare(base, trained, m, num, seed) for m in METRICS]
    comparisons = [c for c in comparisons if c is not None]
    n = comparisons[0].diff.n if comparisons else 0
    moved = [c for c in comparisons if c.diff.excludes_zero()]
    still = [c for c in comparisons if not c.diff.excludes_zero()]
    head = f"On the same {n} held-out questions, {trained.name} vs {base.name}: "
    if not moved:
        return (
            head
            + "no metric changed measurably (every 95% interval of the difference includes 0: "
            + ("; ".join(describe(c) for c in comparisons) + ").")
        )
    text = head + "; ".join(describe(c) for c in moved)
    if still:
        text += "; no measurable change in " + ", ".join(
            f"{METRIC_NAMES[c.metric]} ({_pct(c.a_value)} → {_pct(c.b_value)})" for c in still
        )
    return text + "."


# --- the study's claims --------------------------------------------------------------------------------


def _verdict(c: Comparison | None, want: str) -> str:
    if c is None:
        return "cannot be tested (an evaluation is missing)"
    got = direction(c)
    if want == got:
        return "holds"
    if got == "no measurable difference":
        return "not shown at this scale"
    return "does not hold (the opposite)"


def claim_lines(models: dict[str, ModelScores], num: int = 2000, seed: int = 0) -> list[dict[str, str]]:
    """One line per claim of the paper the study can test, with its numbers and whether it holds here."""

    def get(name: str) -> ModelScores | None:
        return models.get(name)

    def cmp(a: str, b: str, metric: str) -> Comparison | None:
        ma, mb = get(a), get(b)
        return None if ma is None or mb is None else compare(ma, mb, metric, num, seed)

    lines: list[dict[str, str]] = []
    if get("cft") and get("cgd") and get("base"):
        parts, held = [], []
        for metric in ("critique_rate", "verdict_rate"):
            cft, cgd = cmp("base", "cft", metric), cmp("base", "cgd", metric)
            cft_up = cft is not None and cft.diff.low > 0
            cgd_flat = cgd is not None and not cgd.diff.low > 0
            held.append(cft_up and cgd_flat)
            parts.append(
                f"{METRIC_NAMES[metric]}: CFT {describe(cft) if cft else 'missing'}; CGD {describe(cgd) if cgd else 'missing'}"
            )
        verdict = "holds" if any(held) else "not shown at this scale"
        if any(c is None for c in (cmp("base", "cft", "critique_rate"), cmp("base", "cgd", "critique_rate"))):
            verdict = "cannot be tested (an evaluation is missing)"
        lines.append(
            {
                "claim": "CFT drifts towards critique-style outputs and CGD does not",
                "verdict": verdict,
                "numbers": " | ".join(parts) + " (vs base)",
            }
        )
    for other, label in (("sft", "SFT"), ("distilled_sft", "distilled SFT")):
        if get(other) and get("cgd"):
            c = cmp(other, "cgd", "acc")
            lines.append(
                {
                    "claim": f"CGD is more accurate than {label}",
                    "verdict": _verdict(c, "higher"),
                    "numbers": f"{label} → CGD: {describe(c)}" if c else "missing",
                }
            )
    for other, label, claim in (
        ("cgd_no_critique", "CGD without critique", "the critique matters: CGD beats CGD without critique"),
        ("cgd_irrelevant_critique", "CGD with an irrelevant critique", "a specific critique beats an irrelevant one"),
        ("cgd_generic_critique", "CGD with a generic critique", "a specific critique beats a generic one"),
    ):
        if get(other) and get("cgd"):
            c = cmp(other, "cgd", "acc")
            lines.append(
                {
                    "claim": claim,
                    "verdict": _verdict(c, "higher"),
                    "numbers": f"{label} → CGD: {describe(c)}" if c else "missing",
                }
            )
    return lines


# --- tables and chart ----------------------------------------------------------------------------------


def score_table(models: Sequence[ModelScores]) -> list[dict[str, Any]]:
    """Per model: each metric's rate with its Wilson interval, the number of questions and of cut prompts."""
    rows = []
    for m in models:
        row: dict[str, Any] = {"model": m.name, "missing": m.missing, "prompts_cut": m.prompts_cut, "note": m.note}
        if not m.missing:
            row["n"] = len(m.per_question)
            for metric in METRICS:
                row[metric] = rate([q[metric] for q in m.per_question.values()]).to_dict()
        rows.append(row)
    return rows


def plot(models: Sequence[ModelScores], path: Path, title: str) -> None:
    """Grouped bars per metric with Wilson intervals; a missing model is drawn as a labelled empty slot, never as 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(METRICS) * max(2, len(models)) / 1.5), 4.2))
    width = 0.8 / max(1, len(models))
    for j, m in enumerate(models):
        xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(METRICS))]
        if m.missing:
            ax.bar(xs, [100] * len(xs), width, fill=False, hatch="//", edgecolor="0.6", label=f"{m.name} (missing)")
            for x in xs:
                ax.text(x, 50, "missing", rotation=90, ha="center", va="center", fontsize=7, color="0.4")
            continue
        rates = [rate([q[metric] for q in m.per_question.values()]) for metric in METRICS]
        heights = [100 * r.value for r in rates]
        err = [[100 * (r.value - r.low) for r in rates], [100 * (r.high - r.value) for r in rates]]
        bars = ax.bar(xs, heights, width, yerr=err, capsize=3, label=m.name)
        for bar, h, r in zip(bars, heights, rates):  # the value above its interval, so a 0% bar still reads
            ax.text(
                bar.get_x() + bar.get_width() / 2, 100 * r.high + 1, f"{h:.0f}", ha="center", va="bottom", fontsize=6
            )
    ax.set_xticks(range(len(METRICS)), [METRIC_NAMES[m].replace(" rate", "\nrate") for m in METRICS])
    ax.set_ylabel("% of held-out questions (95% Wilson interval)")
    ax.set_ylim(0, 110)
    ax.set_title(title, fontsize=9)
    # The legend sits outside the axes so it never covers a bar.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(
    models: Sequence[ModelScores],
    output_dir: str | Path,
    title: str,
    timings: Sequence[dict[str, Any]] = (),
    num_bootstrap: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``report.md``, ``report.json`` and ``report.png``; returns the JSON payload."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_name = {m.name: m for m in models}
    base = models[0]
    table = score_table(models)
    changes = {m.name: what_changed(base, m, num_bootstrap, seed) for m in models[1:]}
    diffs = []
    for m in models[1:]:
        for metric in METRICS:
            c = compare(base, m, metric, num_bootstrap, seed)
            if c is not None:
                diffs.append(
                    {"model": m.name, "metric": metric, **{f"diff_{k}": v for k, v in c.diff.to_dict().items()}}
                )
    claims = claim_lines(by_name, num_bootstrap, seed) if len(models) > 2 else []

    lines = [f"# {title}", ""]
    lines += [f"**What changed.** {changes[m.name]}" for m in models[1:]] + [""]
    header = ["model", "n", "prompts cut", *[METRIC_NAMES[m] for m in METRICS]]
    lines += ["| " + " | ".join(header) + " |", "|---|---:|---:|" + "---:|" * len(METRICS)]
    for row in table:
        if row["missing"]:
            lines.append(f"| {row['model']} | missing | | " + " | ".join(["—"] * len(METRICS)) + " |")
            continue
        cells = [
            f"{100 * row[m]['value']:.0f}% ({100 * row[m]['low']:.0f}–{100 * row[m]['high']:.0f})" for m in METRICS
        ]
        cut = "" if row["prompts_cut"] is None else str(row["prompts_cut"])
        lines.append(f"| {row['model']} | {row['n']} | {cut} | " + " | ".join(cells) + " |")
    lines += ["", f"Differences to **{base.name}**, paired on the same questions (points, 95% bootstrap CI):", ""]
    lines += ["| model | " + " | ".join(METRIC_NAMES[m] for m in METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for m in models[1:]:
        cells = []
        for metric in METRICS:
            d = next((x for x in diffs if x["model"] == m.name and x["metric"] == metric), None)
            if d is None:
                cells.append("missing")
            else:
                mark = " *" if d["diff_low"] > 0 or d["diff_high"] < 0 else ""
                cells.append(
                    f"{100 * d['diff_value']:+.0f} ({100 * d['diff_low']:+.0f} to {100 * d['diff_high']:+.0f}){mark}"
                )
        lines.append(f"| {m.name} | " + " | ".join(cells) + " |")
    lines += ["", "`*`: the interval excludes 0."]
    if claims:
        lines += ["", "## The paper's claims at this scale", ""]
        lines += [f"- **{c['claim']}**: {c['verdict']}. {c['numbers']}." for c in claims]
    if timings:
        lines += ["", "## Wall time per phase", "", "| phase | status | wall s | CPU s |", "|---|---|---:|---:|"]
        for t in timings:
            lines.append(f"| {t['phase']} | {t['status']} | {t['seconds']:.0f} | {t['cpu_seconds']:.0f} |")
    lines += [
        "",
        "Rates: share of held-out questions. `accuracy`: the final answer equals the gold (symbolic check);",
        "`boxed-answer rate`: the answer ends with a `\\boxed{}` answer; `critique-style rate`: the output reads as a",
        "critique (verdict line or grading phrasing); `verdict-line rate`: it has a `Conclusion: right|wrong` line.",
        "Intervals: Wilson score (rates), paired bootstrap over questions (differences). `prompts cut`: held-out",
        "prompts shortened to fit the model (must be 0).",
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot(models, out / "report.png", title)
    payload = {
        "title": title,
        "baseline": base.name,
        "scores": table,
        "differences": diffs,
        "what_changed": changes,
        "claims": claims,
        "timings": list(timings),
        "intervals": "Wilson score (rates); paired percentile bootstrap over questions (differences), 95%",
    }
    (out / "report.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return payload
