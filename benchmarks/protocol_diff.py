"""Paired comparison of two evaluation runs of one model on the same questions (e.g. ``--protocol cgd`` vs
``--protocol paper``): accuracy and boxed-answer rate per task with 95% Wilson intervals, the paired difference
with a 95% paired-bootstrap interval and an exact McNemar p-value, and the prompts cut in each run.

    python benchmarks/protocol_diff.py outputs/eval/protocols/cgd/runs/smollm2-135m \\
        outputs/eval/protocols/paper/runs/smollm2-135m --labels cgd paper

Reads the lighteval details parquet files the runner saves (``--save-details``); questions are paired by the
problem text (the project's prompt is the instruction, a blank line, then the problem; the paper's is the bare
problem), so a question missing from either run is reported, never silently dropped. With ``--tokenizer`` and
``--cap`` it also counts answers that ran to the cap (re-tokenized length at least 98% of it: the details keep
the batch-padded output tokens, not each answer's own count).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from cgd.stats import mcnemar_exact, paired_bootstrap, wilson_interval


def problem_key(query: str) -> str:
    """The problem text: the project's prompt puts its instruction and a blank line before it."""
    from eval_tasks.cgd_tasks import MATH_INSTRUCTION

    return query.removeprefix(MATH_INSTRUCTION).strip()


def load_details(run_dir: Path) -> dict[str, pd.DataFrame]:
    """Task base name (``gsm8k``) -> details frame of the run's latest results."""
    out: dict[str, pd.DataFrame] = {}
    for parquet in sorted((run_dir / "details").rglob("details_*.parquet")):
        task = parquet.name.removeprefix("details_").split("|")[0].removeprefix("cgd_").removesuffix("_paper")
        out[task] = pd.read_parquet(parquet)  # sorted: a later stamp replaces an earlier one
    return out


def per_question(frame: pd.DataFrame, tokenizer=None, cap: int | None = None) -> dict[str, dict[str, int]]:
    rows = {}
    for _, row in frame.iterrows():
        metric, response = row["metric"], row["model_response"]
        text = str(list(response["text"])[0]) if len(response["text"]) else ""
        at_cap = -1
        if tokenizer is not None and cap:
            at_cap = int(len(tokenizer(text, add_special_tokens=False)["input_ids"]) >= int(0.98 * cap))
        rows[problem_key(str(row["doc"]["query"]))] = {
            "acc": int(float(metric["acc"]) >= 1.0),
            "boxed": int(float(metric["boxed_rate"]) >= 1.0),
            "cut": int(int((response or {}).get("truncated_tokens_count") or 0) > 0),
            "at_cap": at_cap,
        }
    return rows


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path, help="Baseline run folder (the runner's runs/<label>/).")
    parser.add_argument("run_b", type=Path, help="Compared run folder; differences are b - a.")
    parser.add_argument("--labels", nargs=2, default=["a", "b"])
    parser.add_argument("--tokenizer", help="Model folder whose tokenizer counts answer lengths.")
    parser.add_argument("--cap", type=int, help="The runs' max_new_tokens (with --tokenizer).")
    args = parser.parse_args()
    tokenizer = None
    if args.tokenizer and args.cap:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    la, lb = args.labels
    details_a, details_b = load_details(args.run_a), load_details(args.run_b)
    lines = [
        f"| task | n | metric | {la} % [95% CI] | {lb} % [95% CI] | {lb} − {la}, pts [95% CI] | "
        f"only {la} / only {lb} | McNemar p |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for task in sorted(set(details_a) | set(details_b)):
        if task not in details_a or task not in details_b:
            notes.append(f"{task}: only in {'a' if task in details_a else 'b'}, not compared")
            continue
        qa = per_question(details_a[task], tokenizer, args.cap)
        qb = per_question(details_b[task], tokenizer, args.cap)
        keys = [k for k in qa if k in qb]
        if len(keys) != len(qa) or len(keys) != len(qb):
            notes.append(f"{task}: {len(qa)} vs {len(qb)} questions, {len(keys)} paired")
        cut_a, cut_b = sum(v["cut"] for v in qa.values()), sum(v["cut"] for v in qb.values())
        notes.append(f"{task}: prompts cut {la} {cut_a}/{len(qa)}, {lb} {cut_b}/{len(qb)}")
        if tokenizer is not None:
            cap_a, cap_b = sum(v["at_cap"] for v in qa.values()), sum(v["at_cap"] for v in qb.values())
            notes.append(
                f"{task}: answers that ran to the {args.cap}-token cap {la} {cap_a}/{len(qa)}, {lb} {cap_b}/{len(qb)}"
            )
        n = len(keys)
        for metric, name in (("acc", "accuracy"), ("boxed", "boxed-answer rate")):
            a = [qa[k][metric] for k in keys]
            b = [qb[k][metric] for k in keys]
            wa, wb = wilson_interval(sum(a), n), wilson_interval(sum(b), n)
            _, lo, hi = paired_bootstrap(a, b, num=10000)
            only_a, only_b, p = mcnemar_exact(a, b)
            lines.append(
                f"| {task} | {n} | {name} | {pct(sum(a) / n)} [{pct(wa[0])}, {pct(wa[1])}] | "
                f"{pct(sum(b) / n)} [{pct(wb[0])}, {pct(wb[1])}] | "
                f"{100 * (sum(b) - sum(a)) / n:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] | "
                f"{only_a} / {only_b} | {p:.3g} |"
            )
    print("\n".join(lines))
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
