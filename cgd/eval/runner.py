"""Suite runner and side-by-side report for CGD checkpoints (lighteval underneath).

One command scores one or more checkpoints on a task set and writes a comparison::

    python -m cgd.eval.runner run --models outputs/base outputs/cft outputs/cgd --tasks paper_math \\
        --output-dir outputs/eval --data-dir ../shared/data/eval --first-n 100 --max-new-tokens 1024

Each model runs in its own ``python -m cgd.eval.cli accelerate|endpoint litellm`` subprocess (the
offline/compat shims applied, see :mod:`cgd.eval.compat`), writing lighteval's usual
``results/.../results_*.json`` and ``details/...parquet`` under ``<output-dir>/runs/<label>/``. The
report (``report.md``, ``report.csv``, ``report.png``) is built from those results JSON files:
task x model, with the delta of every model to the first one, for accuracy and format-drift rates.

Library use (the demo calls these)::

    from cgd.eval.runner import evaluate_models, write_report
    report = evaluate_models(["outputs/base", "outputs/cgd"], ["cgd_gsm8k"], "outputs/eval", data_dir=...)
    report.frame  # pandas DataFrame, one row per (task, metric)

Other subcommands: ``report RUN_DIR...`` rebuilds the report from existing lighteval output folders;
``agreement DETAILS.parquet`` rescoring MATH-500 generations with lighteval's built-in ``math_500``
metric next to cgd's (see :func:`builtin_math500_agreement`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CUSTOM_TASKS = REPO_ROOT / "eval_tasks" / "cgd_tasks.py"
#: The first metric found in a task's results is its headline number in the chart.
PRIMARY_METRICS = ("acc", "prompt_level_strict_acc", "pass@k:k=1&n=16", "extractive_match")
#: Format-drift metrics the report always shows when present.
DRIFT_METRICS = ("critique_rate", "boxed_rate")
#: Metrics the Markdown table shows (the CSV keeps every metric lighteval reported).
REPORT_METRICS = PRIMARY_METRICS + DRIFT_METRICS + ("verdict_rate", "pass@k:k=8&n=16", "inst_level_strict_acc")


# --- task specs ---------------------------------------------------------------------------------------


def _suites() -> dict[str, list[str]]:
    """Task groups defined in eval_tasks/cgd_tasks.py (imported lazily: it imports lighteval)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from eval_tasks.cgd_tasks import SUITES

    return SUITES


def expand_tasks(tasks: str | Sequence[str]) -> list[str]:
    """Normalise a task list to lighteval specs: suite names (``paper_math``) and task-list files
    (``recipes/eval/paper_math.txt``) expand, ``|0`` is added when no few-shot count is given, duplicates
    are dropped. Accepts a comma-separated string too."""
    items = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t and t.strip()]
    suites: dict[str, list[str]] | None = None
    out: list[str] = []
    for item in items:
        if item.endswith(".txt") and Path(item).is_file():  # a lighteval task-list file (recipes/eval/*.txt)
            lines = [line.strip() for line in Path(item).read_text().splitlines()]
            out.extend(expand_tasks([line for line in lines if line and not line.startswith("#")]))
            continue
        if "|" not in item and "@" not in item and not item.startswith("cgd_") and item != "ifeval":
            suites = suites if suites is not None else _suites()
            if item in suites:
                out.extend(f"{t}|0" for t in suites[item])
                continue
        out.append(item if "|" in item else f"{item}|0")
    return list(dict.fromkeys(out))


def model_label(model: str) -> str:
    """A short, filesystem-safe label for a model path or Hub id (its last path component)."""
    name = Path(model.rstrip("/")).name or model
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


# --- running ------------------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """One model's lighteval run: where it wrote, how long it took, its exit status."""

    label: str
    model: str
    run_dir: Path
    wall_seconds: float
    returncode: int
    command: list[str] = field(default_factory=list)


@dataclass
class Report:
    """The files a report wrote and its table (one row per task x metric, one column per model)."""

    markdown: Path
    csv: Path
    png: Path
    frame: Any  # pandas.DataFrame
    runs: list[RunRecord] = field(default_factory=list)


def build_model_args(
    model: str,
    backend: str = "accelerate",
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    base_url: str | None = None,
    temperature: float | None = None,
    extra: str | None = None,
    cache_dir: str | Path | None = "fresh",
) -> str:
    """lighteval's comma-separated model args for one model.

    ``accelerate``: ``model_name=<path or id>,device=...,batch_size=...``. ``litellm``:
    ``model_name=openai/<model as the server names it>``, ``provider=openai``, ``base_url`` and a
    placeholder API key unless ``OPENAI_API_KEY`` is set.

    ``cache_dir``: lighteval caches generations under ``~/.cache/huggingface/lighteval/<model_name>/<hash of
    the model args>`` -- keyed by the *path*, not the weights, so a checkpoint retrained in place (or a
    server now serving another model) would be scored from stale generations. The default ``"fresh"``
    gives every call its own empty cache folder under the system temp dir; ``None`` keeps lighteval's.
    """
    if cache_dir == "fresh":
        import tempfile

        cache_dir = tempfile.mkdtemp(prefix="cgd-lighteval-cache-")
    if backend == "litellm" and not model.startswith("openai/"):
        model = f"openai/{model}"  # litellm routes "openai/<name>" to the OpenAI-compatible base_url
    parts = [f"model_name={model}"]
    if backend == "accelerate":
        if device:
            parts.append(f"device={device}")
        if batch_size:
            parts.append(f"batch_size={batch_size}")
        if dtype:
            parts.append(f"dtype={dtype}")
    elif backend == "litellm":
        from importlib.util import find_spec

        if find_spec("litellm") is None:  # an optional extra: it and what only it needs are ~180 MB
            raise ValueError('backend litellm needs the litellm package: pip install "cgd[litellm]"')
        parts.append("provider=openai")
        if base_url:
            parts.append(f"base_url={base_url}")
        parts.append(f"api_key={os.environ.get('OPENAI_API_KEY', 'EMPTY')}")
    else:
        raise ValueError(f"backend must be 'accelerate' or 'litellm', not {backend!r}")
    gen = []
    if max_new_tokens:
        gen.append(f"max_new_tokens:{int(max_new_tokens)}")
    if temperature is not None:
        gen.append(f"temperature:{temperature}")
    if gen:
        parts.append("generation_parameters={" + ",".join(gen) + "}")
    if cache_dir is not None:
        parts.append(f"cache_dir={cache_dir}")
    if extra:
        parts.append(extra)
    return ",".join(parts)


def lighteval_command(
    model_args: str,
    tasks: Sequence[str],
    output_dir: Path,
    backend: str = "accelerate",
    custom_tasks: Path | str = DEFAULT_CUSTOM_TASKS,
    max_samples: int | None = None,
    save_details: bool = True,
) -> list[str]:
    """The ``python -m cgd.eval.cli ...`` argv for one run."""
    head = ["accelerate"] if backend == "accelerate" else ["endpoint", "litellm"]
    cmd = [sys.executable, "-m", "cgd.eval.cli", *head, model_args, ",".join(tasks)]
    cmd += ["--custom-tasks", str(custom_tasks), "--output-dir", str(output_dir)]
    if save_details:
        cmd.append("--save-details")
    if max_samples:
        cmd += ["--max-samples", str(int(max_samples))]
    return cmd


def run_environment(data_dir: str | Path | None = None, first_n: int | None = None) -> dict[str, str]:
    """The subprocess environment: repo root importable, local data/first-N settings, offline by default
    when a local data dir is given."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if data_dir is not None:
        env["CGD_EVAL_DATA_DIR"] = str(Path(data_dir).resolve())
    if first_n:
        env["CGD_EVAL_FIRST_N"] = str(int(first_n))
    return env


def evaluate_models(
    models: Sequence[str],
    tasks: str | Sequence[str],
    output_dir: str | Path,
    data_dir: str | Path | None = None,
    max_samples: int | None = None,
    first_n: int | None = None,
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    backend: str = "accelerate",
    base_url: str | None = None,
    temperature: float | None = None,
    labels: Sequence[str] | None = None,
    model_args_extra: str | None = None,
    custom_tasks: str | Path = DEFAULT_CUSTOM_TASKS,
    timeout: float | None = None,
    stream_output: bool = False,
) -> Report:
    """Evaluate each model on ``tasks`` (one lighteval subprocess per model), then write the report.

    Args:
        models: checkpoint folders or Hub ids (``backend="accelerate"``), or model names as an
            OpenAI-compatible server knows them (``backend="litellm"``, with ``base_url``).
        tasks: task names, lighteval specs (``cgd_gsm8k|0``) or suite names from ``cgd_tasks.SUITES``.
        output_dir: runs go to ``<output_dir>/runs/<label>/``, the report to ``<output_dir>/report.*``.
        data_dir: folder of ``<task>/test.jsonl`` files read instead of the Hub (CGD_EVAL_DATA_DIR).
        max_samples: lighteval's ``--max-samples`` (a seeded random subset per task).
        first_n: the first N rows of each data file instead (CGD_EVAL_FIRST_N).
        max_new_tokens: caps every task's generation length (overrides the per-task default).
        labels: names for the report columns (default: last path component of each model).
        timeout: seconds per model run; a run that fails or times out is reported and skipped.

    Returns:
        The :class:`Report` (paths, table, and one :class:`RunRecord` per model).
    """
    output_dir = Path(output_dir)
    (output_dir / "runs").mkdir(parents=True, exist_ok=True)
    specs = expand_tasks(tasks)
    labels = list(labels) if labels else [model_label(m) for m in models]
    if len(labels) != len(models) or len(set(labels)) != len(labels):
        raise ValueError(f"need one distinct label per model, got {labels} for {list(models)}")
    env = run_environment(data_dir, first_n)
    records: list[RunRecord] = []
    for model, label in zip(models, labels):
        run_dir = output_dir / "runs" / label
        model_args = build_model_args(
            model, backend, max_new_tokens, batch_size, device, dtype, base_url, temperature, model_args_extra
        )
        cmd = lighteval_command(model_args, specs, run_dir, backend, custom_tasks, max_samples)
        logger.info("evaluating %s: %s", label, " ".join(cmd))
        start = time.perf_counter()
        log_path = output_dir / "runs" / f"{label}.log"
        try:
            if stream_output:
                returncode = subprocess.run(cmd, cwd=REPO_ROOT, env=env, timeout=timeout, check=False).returncode
            else:
                with open(log_path, "w") as log:
                    returncode = subprocess.run(
                        cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
                    ).returncode
        except subprocess.TimeoutExpired:
            returncode = -9
        wall = time.perf_counter() - start
        if returncode != 0:
            logger.error("lighteval run for %s failed (rc=%s); see %s", label, returncode, log_path.name)
        records.append(RunRecord(label, model, run_dir, wall, returncode, cmd))
    _write_manifest(output_dir, records, specs)
    ok = [r for r in records if r.returncode == 0]
    if not ok:
        raise RuntimeError(f"every lighteval run failed; logs in {output_dir / 'runs'}")
    report = write_report([r.run_dir for r in ok], output_dir, labels=[r.label for r in ok], runs=records)
    return report


def _write_manifest(output_dir: Path, records: list[RunRecord], specs: list[str]) -> None:
    manifest = {
        "tasks": specs,
        "runs": [
            {
                "label": r.label,
                "model": r.model,
                "run_dir": str(r.run_dir),
                "wall_seconds": round(r.wall_seconds, 2),
                "returncode": r.returncode,
                "command": r.command,
            }
            for r in records
        ],
    }
    (output_dir / "runs.json").write_text(json.dumps(manifest, indent=2))


# --- reading results ----------------------------------------------------------------------------------


def latest_results_file(run_dir: str | Path) -> Path:
    """The newest ``results_*.json`` lighteval wrote under ``run_dir`` (searched recursively); a file
    path is returned as is."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return run_dir
    files = sorted(run_dir.rglob("results_*.json"), key=lambda p: p.name)
    if not files:
        raise FileNotFoundError(f"no lighteval results_*.json under {run_dir}")
    return files[-1]


def count_details(results_file: Path) -> dict[str, int]:
    """Samples per task, counted from the details parquet files of the same run (when saved).

    lighteval writes ``<out>/results/<model>/results_<stamp>.json`` and
    ``<out>/details/<model>/<stamp>/details_<task>_<stamp>.parquet``.
    """
    import pandas as pd

    stamp = results_file.stem.removeprefix("results_")
    root = next((p.parent for p in results_file.parents if p.name == "results"), None)
    counts: dict[str, int] = {}
    if root is None or not (root / "details").is_dir():
        return counts
    for parquet in (root / "details").rglob(f"details_*_{stamp}.parquet"):
        task = parquet.name.removeprefix("details_").removesuffix(f"_{stamp}.parquet")
        counts[task] = len(pd.read_parquet(parquet, columns=["metric"]))
    return counts


def load_results(run_dirs: Sequence[str | Path], labels: Sequence[str] | None = None):
    """Long table of every (model, task, metric, value, stderr, n) in the runs' latest results JSON."""
    import pandas as pd

    rows = []
    for i, run_dir in enumerate(run_dirs):
        path = latest_results_file(run_dir)
        data = json.loads(path.read_text())
        label = labels[i] if labels else model_label(str(data["config_general"].get("model_name", run_dir)))
        counts = count_details(path)
        for task, metrics in data["results"].items():
            if task == "all":
                continue
            for name, value in metrics.items():
                if name.endswith("_stderr") or not isinstance(value, int | float):
                    continue
                rows.append(
                    {
                        "model": label,
                        "task": task.split("|")[0],
                        "metric": name,
                        "value": float(value),
                        "stderr": metrics.get(f"{name}_stderr"),
                        "n": counts.get(task),
                    }
                )
    return pd.DataFrame(rows, columns=["model", "task", "metric", "value", "stderr", "n"])


def comparison_table(long, models: Sequence[str] | None = None):
    """Wide table: index (task, metric), one column per model (in order), then ``Δ <model>`` columns
    holding each later model minus the first."""
    models = list(models) if models else list(dict.fromkeys(long["model"]))
    wide = long.pivot_table(index=["task", "metric"], columns="model", values="value", aggfunc="last")
    wide = wide.reindex(columns=models)
    for model in models[1:]:
        wide[f"Δ {model}"] = wide[model] - wide[models[0]]
    wide.columns.name = None
    return wide


def _primary_metric(metrics: Sequence[str]) -> str | None:
    return next((m for m in PRIMARY_METRICS if m in metrics), None)


def write_report(
    run_dirs: Sequence[str | Path],
    output_dir: str | Path,
    labels: Sequence[str] | None = None,
    runs: Sequence[RunRecord] | None = None,
    title: str = "CGD evaluation",
) -> Report:
    """Write ``report.md``, ``report.csv`` and ``report.png`` comparing the runs (first = baseline).

    ``run_dirs`` are lighteval ``--output-dir`` folders (or results JSON files), one per model.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    long = load_results(run_dirs, labels)
    if long.empty:
        raise ValueError(f"no metrics found in {list(run_dirs)}")
    models = list(labels) if labels else list(dict.fromkeys(long["model"]))
    wide = comparison_table(long, models)

    csv_path = output_dir / "report.csv"
    wide.reset_index().to_csv(csv_path, index=False, float_format="%.6g")

    shown = wide[wide.index.get_level_values("metric").isin(REPORT_METRICS)]
    n_by_task = long.dropna(subset=["n"]).groupby("task")["n"].max().to_dict()
    lines = [f"# {title}", "", f"Baseline: **{models[0]}** (Δ columns are each model minus the baseline).", ""]
    header = ["task", "metric", "n", *models, *[f"Δ {m}" for m in models[1:]]]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|")
    for (task, metric), row in shown.iterrows():
        n = n_by_task.get(task)
        cells = [task, metric, "" if n is None else str(int(n))]
        cells += ["" if np.isnan(row[m]) else f"{100 * row[m]:.1f}" for m in models]
        cells += ["" if np.isnan(row[f"Δ {m}"]) else f"{100 * row[f'Δ {m}']:+.1f}" for m in models[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Values are percentages. `acc`: pass@1 (greedy) with symbolic answer checking, or option-letter",
        "accuracy for multiple choice; `critique_rate`: share of outputs that read as a critique (a",
        "`Conclusion: right|wrong` verdict or grading phrasing); `boxed_rate`: share whose last line holds",
        "a `\\boxed{}` answer; `verdict_rate`: share with a verdict line.",
    ]
    if runs:
        lines += ["", "| model | wall time (s) | exit |", "|---|---:|---:|"]
        lines += [f"| {r.label} | {r.wall_seconds:.1f} | {r.returncode} |" for r in runs]
    md_path = output_dir / "report.md"
    md_path.write_text("\n".join(lines) + "\n")

    png_path = output_dir / "report.png"
    tasks = list(dict.fromkeys(long["task"]))
    panels = [("accuracy", None)] + [(m, m) for m in DRIFT_METRICS if m in set(long["metric"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6, 1.2 * len(tasks) * len(models)) * len(panels) / 2, 4))
    axes = np.atleast_1d(axes)
    width = 0.8 / max(1, len(models))
    x = np.arange(len(tasks))
    for ax, (name, metric) in zip(axes, panels):
        for j, model in enumerate(models):
            values = []
            for task in tasks:
                sub = long[(long["task"] == task) & (long["model"] == model)]
                chosen = metric or _primary_metric(list(sub["metric"]))
                hit = sub[sub["metric"] == chosen]["value"]
                values.append(100 * float(hit.iloc[0]) if len(hit) else 0.0)
            ax.bar(x + (j - (len(models) - 1) / 2) * width, values, width, label=model)
        ax.set_xticks(x, [t.removeprefix("cgd_") for t in tasks], rotation=30, ha="right")
        ax.set_ylabel("%")
        ax.set_ylim(0, 100)
        ax.set_title(name)
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return Report(markdown=md_path, csv=csv_path, png=png_path, frame=wide, runs=list(runs or []))


# --- agreement with lighteval's built-in math_500 -----------------------------------------------------


def builtin_math500_agreement(details: str | Path | Sequence[str | Path]) -> dict[str, Any]:
    """Rescore saved MATH-500 generations (lighteval details parquet files of ``cgd_math500``) with
    lighteval's built-in ``math_500`` metric and with cgd's; see :func:`math500_agreement`."""
    import pandas as pd

    paths = [details] if isinstance(details, str | Path) else list(details)
    frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    pairs = []
    for _, row in frame.iterrows():
        doc, response = row["doc"], row["model_response"]
        gold = str(doc["specific"]["answer"]) if doc.get("specific") else str(doc["choices"][0])
        pairs.append((str(list(response["text"])[0]) if len(response["text"]) else "", gold))
    return math500_agreement(pairs)


def math500_agreement(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Score (generation, gold answer) pairs with lighteval's built-in ``math_500`` metric and with cgd's.

    The built-in task scores with ``Metrics.pass_at_k_math(k=1, n=1)`` against the gold its prompt
    function builds from a ``solution`` column (``"ANSWER: <solution>"``); the local files carry only
    ``answer``, so the solution is given as ``\\boxed{answer}`` (MATH solutions end that way). Returns
    counts and the disagreeing samples.
    """
    from lighteval.metrics.metrics import Metrics
    from lighteval.models.model_output import ModelResponse
    from lighteval.tasks.tasks.math_500 import math_500_prompt

    from cgd.answers import answers_match
    from cgd.eval.compat import apply

    apply()
    builtin = Metrics.pass_at_k_math(sample_params={"k": 1, "n": 1})
    both = ours_only = builtin_only = neither = 0
    disagreements = []
    for text, gold in pairs:
        bdoc = math_500_prompt({"problem": "", "solution": f"\\boxed{{{gold}}}"}, "math_500")
        b = float(builtin.sample_level_fn.compute(doc=bdoc, model_response=ModelResponse(text=[text]))) >= 1.0
        o = answers_match(text, gold)
        both += b and o
        ours_only += o and not b
        builtin_only += b and not o
        neither += not (b or o)
        if b != o:
            disagreements.append({"gold": gold, "ours": o, "builtin": b, "tail": text[-300:]})
    return {
        "n": both + ours_only + builtin_only + neither,
        "ours_correct": both + ours_only,
        "builtin_correct": both + builtin_only,
        "agree": both + neither,
        "ours_only": ours_only,
        "builtin_only": builtin_only,
        "disagreements": disagreements,
    }


# --- CLI ----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cgd.eval.runner", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="evaluate checkpoints and write the report")
    run.add_argument("--models", nargs="+", required=True, help="checkpoint folders / Hub ids (first = baseline)")
    run.add_argument("--tasks", required=True, help="comma-separated tasks or suites (paper_math, math, general, all)")
    run.add_argument("--output-dir", default="outputs/eval")
    run.add_argument("--labels", nargs="+", help="report column names, one per model")
    run.add_argument("--data-dir", help="folder of <task>/test.jsonl files instead of the Hub (CGD_EVAL_DATA_DIR)")
    run.add_argument("--max-samples", type=int, help="lighteval --max-samples (seeded random subset)")
    run.add_argument("--first-n", type=int, help="only the first N rows of each data file")
    run.add_argument("--max-new-tokens", type=int, help="cap on generated tokens for every task")
    run.add_argument("--batch-size", type=int)
    run.add_argument("--device", help="accelerate backend: cpu, cuda ... (default: lighteval's, cuda)")
    run.add_argument("--dtype", help="accelerate backend: float32, bfloat16 ...")
    run.add_argument("--backend", choices=["accelerate", "litellm"], default="accelerate")
    run.add_argument("--base-url", help="litellm backend: the OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    run.add_argument("--temperature", type=float, help="sampling temperature (needed by *_sampled tasks)")
    run.add_argument("--model-args", help="extra lighteval model args appended verbatim (k=v,k=v)")
    run.add_argument("--custom-tasks", default=str(DEFAULT_CUSTOM_TASKS))
    run.add_argument("--timeout", type=float, help="seconds per model run")

    report = sub.add_parser("report", help="rebuild the report from lighteval output folders")
    report.add_argument("run_dirs", nargs="+")
    report.add_argument("--labels", nargs="+")
    report.add_argument("--output-dir", default="outputs/eval")

    agree = sub.add_parser("agreement", help="rescore MATH-500 details with lighteval's built-in math_500 metric")
    agree.add_argument("details", nargs="+", help="details_cgd_math500|0_*.parquet file(s)")
    agree.add_argument("--show", type=int, default=5, help="disagreements to print")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (``python -m cgd.eval.runner``)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    if args.command == "run":
        report = evaluate_models(
            args.models,
            args.tasks,
            args.output_dir,
            data_dir=args.data_dir,
            max_samples=args.max_samples,
            first_n=args.first_n,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            device=args.device,
            dtype=args.dtype,
            backend=args.backend,
            base_url=args.base_url,
            temperature=args.temperature,
            labels=args.labels,
            model_args_extra=args.model_args,
            custom_tasks=args.custom_tasks,
            timeout=args.timeout,
            stream_output=True,
        )
    elif args.command == "report":
        report = write_report(args.run_dirs, args.output_dir, labels=args.labels)
    else:
        result = builtin_math500_agreement(args.details)
        shown = {k: v for k, v in result.items() if k != "disagreements"}
        print(json.dumps(shown, indent=2))
        for item in result["disagreements"][: args.show]:
            print(json.dumps(item, ensure_ascii=False))
        return 0
    print(report.markdown.read_text())
    print(f"wrote {report.markdown}, {report.csv}, {report.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
