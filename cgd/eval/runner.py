"""Suite runner and side-by-side report for CGD checkpoints (lighteval underneath).

One command scores one or more checkpoints on a task set and writes a comparison::

    python -m cgd.eval run --models outputs/base outputs/cft outputs/cgd --tasks paper_math \\
        --output_dir outputs/eval --data_dir ../shared/data/eval --first_n 100 --max_new_tokens 1024
    python -m cgd.eval run --config my_eval.yaml --first_n 20     # YAML keys = EvalArguments fields

Each model runs in its own ``python -m cgd.eval.cli accelerate|endpoint litellm`` subprocess (the
offline/compat shims applied, see :mod:`cgd.eval.compat`), writing lighteval's usual
``results/.../results_*.json`` and ``details/...parquet`` under ``<output-dir>/runs/<label>/``. The
report (``report.md``, ``report.csv``, ``report.png``) is built from those results JSON files:
task x model, with the delta of every model to the first one, for accuracy and format-drift rates.

Library use (the demo calls these)::

    from cgd.eval.runner import EvalArguments, evaluate_models, run, write_report
    report = run(EvalArguments(models=["outputs/base", "outputs/cgd"], tasks="cgd_gsm8k", data_dir=...))
    report = evaluate_models(["outputs/base", "outputs/cgd"], ["cgd_gsm8k"], "outputs/eval", data_dir=...)
    report.frame  # pandas DataFrame, one row per (task, metric)

Every option is a field of :class:`EvalArguments` (YAML key and flag, parsed by TRL's ``TrlParser``; unknown keys
are refused with the closest name, abbreviations too). Other subcommands: ``report --run_dirs DIR...`` rebuilds the report from existing lighteval output folders;
``agreement --details DETAILS.parquet`` rescores MATH-500 generations with lighteval's built-in ``math_500``
metric next to cgd's (see :func:`builtin_math500_agreement`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cgd.cli import StrictParser, suggest
from cgd.eval.suites import CGD_TASKS, PAPER_TASKS, SUITES, suite_tasks

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


def expand_tasks(tasks: str | Sequence[str]) -> list[str]:
    """Normalise a task list to lighteval specs: suite names (``paper_math``) and task-list files
    (``recipes/eval/paper_math.txt``) expand, ``|0`` is added when no few-shot count is given, duplicates
    are dropped. Accepts a comma-separated string too."""
    items = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t and t.strip()]
    out: list[str] = []
    for item in items:
        if item.endswith(".txt") and Path(item).is_file():  # a lighteval task-list file (recipes/eval/*.txt)
            lines = [line.strip() for line in Path(item).read_text().splitlines()]
            out.extend(expand_tasks([line for line in lines if line and not line.startswith("#")]))
            continue
        if "|" not in item and "@" not in item and not item.startswith("cgd_") and item != "ifeval":
            if item in SUITES:
                out.extend(f"{t}|0" for t in suite_tasks(item))
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


@dataclass
class EvalArguments:
    """``python -m cgd.eval run``: every field is a YAML key (``--config eval.yaml``) and a command-line flag."""

    models: list[str] = field(
        metadata={"help": "Checkpoint folders or Hub ids (litellm: served model names); first = baseline."}
    )
    tasks: str = field(
        metadata={
            "help": "Comma-separated tasks, suites (paper_math, math, general, sampled, paper, all) or task files."
        }
    )
    output_dir: str = field(
        default="outputs/eval", metadata={"help": "Runs go to <output_dir>/runs/<label>/, the report beside."}
    )
    labels: list[str] | None = field(default=None, metadata={"help": "Report column names, one per model."})
    data_dir: str | None = field(
        default=None, metadata={"help": "Folder of <task>/test.jsonl files read instead of the Hub."}
    )
    first_n: int | None = field(
        default=None, metadata={"help": "Only the first N rows of each data file (file order)."}
    )
    max_samples: int | None = field(
        default=None, metadata={"help": "lighteval's --max-samples (a seeded random subset)."}
    )
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "New tokens per answer on every task, up or down from the task's own length."}
    )
    batch_size: int | None = field(
        default=None, metadata={"help": "Batch size; a CPU run without one uses cgd.eval.compat.CPU_BATCH_SIZE (4)."}
    )
    device: str | None = field(
        default=None, metadata={"help": "accelerate backend: cpu, cuda ... (lighteval's default: cuda)."}
    )
    dtype: str | None = field(default=None, metadata={"help": "accelerate backend: float32, bfloat16 ..."})
    backend: str = field(
        default="accelerate",
        metadata={
            "help": "accelerate (transformers) or litellm (an OpenAI-compatible server).",
            "choices": ["accelerate", "litellm"],
        },
    )
    base_url: str | None = field(
        default=None, metadata={"help": "litellm backend: the server, e.g. http://127.0.0.1:8000/v1."}
    )
    temperature: float | None = field(
        default=None, metadata={"help": "Sampling temperature (the *_sampled tasks need one > 0)."}
    )
    protocol: str = field(
        default="cgd",
        metadata={
            "help": "cgd: the project's prompts and lengths; paper: the CGD authors' (system-line instruction, 8192 new "
            "tokens, MMLU-Pro 5-shot 'the answer is (X)') through the cgd_*_paper tasks.",
            "choices": ["cgd", "paper"],
        },
    )
    on_prompt_cut: str = field(
        default="error",
        metadata={
            "help": "A prompt longer than the model's context: error, or count (cut from the left, reported).",
            "choices": ["error", "count"],
        },
    )
    model_args: str | None = field(
        default=None, metadata={"help": "Extra lighteval model args appended verbatim (k=v,k=v)."}
    )
    custom_tasks: str = field(default=str(DEFAULT_CUSTOM_TASKS), metadata={"help": "lighteval --custom-tasks file."})
    timeout: float | None = field(default=None, metadata={"help": "Seconds per model run."})
    stream_output: bool = field(
        default=True,
        metadata={"help": "Also show lighteval's output (progress bars) as it runs; runs/<label>.log always gets it."},
    )


@dataclass
class ReportArguments:
    """``python -m cgd.eval report``: rebuild the report from lighteval output folders."""

    run_dirs: list[str] = field(
        metadata={"help": "lighteval --output-dir folders (or results JSON files), first = baseline."}
    )
    labels: list[str] | None = field(default=None, metadata={"help": "Report column names, one per run."})
    output_dir: str = field(default="outputs/eval", metadata={"help": "Where report.md/.csv/.png go."})


@dataclass
class AgreementArguments:
    """``python -m cgd.eval agreement``: rescore MATH-500 details with lighteval's built-in math_500 metric."""

    details: list[str] = field(metadata={"help": "details_cgd_math500|0_*.parquet file(s)."})
    show: int = field(default=5, metadata={"help": "Disagreements to print."})


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


def paper_protocol(specs: Sequence[str]) -> list[str]:
    """Each task spec replaced by its ``cgd_*_paper`` variant where one exists (``cgd_math500|0`` ->
    ``cgd_math500_paper|0``); tasks without one are kept."""
    out = []
    for spec in specs:
        name, _, rest = spec.partition("|")
        paper = f"{name}_paper"
        out.append(f"{paper}|{rest}" if paper in PAPER_TASKS else spec)
    return list(dict.fromkeys(out))


def known_task_names(custom_tasks: str | Path = DEFAULT_CUSTOM_TASKS) -> set[str]:
    """Task names a run can use: the custom tasks file's ``TASKS_TABLE`` (the suites table for the default
    file, with no lighteval import) and lighteval's built-in tasks (imported only when asked)."""
    if Path(custom_tasks).resolve() == DEFAULT_CUSTOM_TASKS.resolve():
        return set(CGD_TASKS) | set(PAPER_TASKS)
    import importlib.util

    from cgd.eval.compat import apply

    apply()
    spec = importlib.util.spec_from_file_location("cgd_custom_tasks_check", custom_tasks)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {config.name for config in module.TASKS_TABLE}


def check_task_names(specs: Sequence[str], custom_tasks: str | Path = DEFAULT_CUSTOM_TASKS) -> None:
    """Raise ``ValueError`` naming every unknown task (with the closest known name) before any model loads."""
    names = [spec.split("|")[0] for spec in specs]
    known = known_task_names(custom_tasks)
    unknown = [name for name in names if name not in known]
    if unknown:
        from cgd.eval.compat import apply

        apply()
        from lighteval.tasks.registry import Registry

        known |= set(Registry.load_all_task_configs())
        unknown = [name for name in unknown if name not in known]
    if unknown:
        raise ValueError(
            f"unknown task(s): {suggest(unknown, set(known) | set(SUITES))}; suites: {', '.join(SUITES)}; "
            f"cgd tasks: {', '.join(CGD_TASKS)}"
        )


def generation_note(args: EvalArguments, specs: Sequence[str]) -> str:
    """One line saying how many new tokens each answer may have in this run."""
    if args.max_new_tokens:
        return f"Generation: up to {args.max_new_tokens} new tokens per answer on every task (max_new_tokens)."
    return (
        "Generation: each task's own length (1024-8192 new tokens, docs/evaluation.md); "
        "set max_new_tokens to cap it (on CPU, e.g. 256)."
    )


def run(args: EvalArguments) -> Report:
    """Evaluate each model on the tasks (one lighteval subprocess per model), then write the report.

    Task names are checked before any model loads; a CPU run without a batch size uses
    :data:`cgd.eval.compat.CPU_BATCH_SIZE`. A run that fails or times out is reported and skipped.
    """
    output_dir = Path(args.output_dir)
    specs = expand_tasks(args.tasks)
    if args.protocol == "paper":
        specs = paper_protocol(specs)
    elif args.protocol != "cgd":
        raise ValueError(f"protocol must be 'cgd' or 'paper', not {args.protocol!r}")
    check_task_names(specs, args.custom_tasks)
    labels = list(args.labels) if args.labels else [model_label(m) for m in args.models]
    if len(labels) != len(args.models) or len(set(labels)) != len(labels):
        raise ValueError(f"need one distinct label per model, got {labels} for {list(args.models)}")
    batch_size = args.batch_size
    if batch_size is None and args.backend == "accelerate" and args.device == "cpu":
        from cgd.eval.compat import CPU_BATCH_SIZE

        batch_size = CPU_BATCH_SIZE
    note = generation_note(args, specs)
    logger.info("%s", note)
    (output_dir / "runs").mkdir(parents=True, exist_ok=True)
    env = run_environment(args.data_dir, args.first_n)
    env["CGD_EVAL_PROMPT_CUT"] = args.on_prompt_cut
    records: list[RunRecord] = []
    for model, label in zip(args.models, labels):
        run_dir = output_dir / "runs" / label
        model_args = build_model_args(
            model,
            backend=args.backend,
            max_new_tokens=args.max_new_tokens,
            batch_size=batch_size,
            device=args.device,
            dtype=args.dtype,
            base_url=args.base_url,
            temperature=args.temperature,
            extra=args.model_args,
        )
        cmd = lighteval_command(model_args, specs, run_dir, args.backend, args.custom_tasks, args.max_samples)
        logger.info("evaluating %s: %s", label, " ".join(cmd))
        start = time.perf_counter()
        log_path = output_dir / "runs" / f"{label}.log"
        try:
            returncode = run_logged(cmd, log_path, env=env, echo=args.stream_output, timeout=args.timeout)
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
    return write_report(
        [r.run_dir for r in ok],
        output_dir,
        labels=[r.label for r in ok],
        runs=records,
        notes=[note],
        all_labels=labels,
    )


def run_logged(
    cmd: Sequence[str], log_path: Path, env: dict[str, str], echo: bool, timeout: float | None = None
) -> int:
    """Run ``cmd``, writing its output to ``log_path`` and, with ``echo``, to the terminal as it comes (progress
    bars included: chunks, not lines). Returns the exit code; raises ``subprocess.TimeoutExpired`` past ``timeout``
    (the process is killed then, even while it prints nothing)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(list(cmd), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            proc.kill()

        watchdog = threading.Timer(timeout, stop) if timeout else None
        if watchdog:
            watchdog.start()
        try:
            while chunk := proc.stdout.read1(65536):
                log.write(chunk)
                if echo:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
            returncode = proc.wait()
        finally:
            if watchdog:
                watchdog.cancel()
    if timed_out.is_set():
        raise subprocess.TimeoutExpired(list(cmd), timeout)
    return returncode


def evaluate_models(
    models: Sequence[str], tasks: str | Sequence[str], output_dir: str | Path, **options: Any
) -> Report:
    """:func:`run` for library callers: ``options`` are :class:`EvalArguments` fields (``data_dir``,
    ``first_n``, ``max_new_tokens``, ``batch_size``, ``device`` ...)."""
    if not isinstance(tasks, str):
        tasks = ",".join(tasks)
    return run(EvalArguments(models=list(models), tasks=tasks, output_dir=str(output_dir), **options))


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


def count_details(results_file: Path) -> dict[str, tuple[int, int | None]]:
    """(samples, prompts cut) per task, counted from the details parquet files of the same run (when saved).

    lighteval writes ``<out>/results/<model>/results_<stamp>.json`` and
    ``<out>/details/<model>/<stamp>/details_<task>_<stamp>.parquet``; a prompt counts as cut when its
    ``truncated_tokens_count`` is above 0 (set right by :func:`cgd.eval.compat.keep_prompts_whole`).
    """
    import pandas as pd

    stamp = results_file.stem.removeprefix("results_")
    root = next((p.parent for p in results_file.parents if p.name == "results"), None)
    counts: dict[str, tuple[int, int | None]] = {}
    if root is None or not (root / "details").is_dir():
        return counts
    for parquet in (root / "details").rglob(f"details_*_{stamp}.parquet"):
        task = parquet.name.removeprefix("details_").removesuffix(f"_{stamp}.parquet")
        frame = pd.read_parquet(parquet)
        cut = None
        if "model_response" in frame.columns:
            cut = sum(int((r or {}).get("truncated_tokens_count") or 0) > 0 for r in frame["model_response"])
        counts[task] = (len(frame), cut)
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
                        "n": counts.get(task, (None, None))[0],
                        "cut": counts.get(task, (None, None))[1],
                    }
                )
    return pd.DataFrame(rows, columns=["model", "task", "metric", "value", "stderr", "n", "cut"])


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


def chart_values(long, tasks: Sequence[str], models: Sequence[str], metric: str | None) -> dict[str, list[float]]:
    """Per model, the percentage per task the chart draws (``metric`` None: each task's headline metric);
    NaN where a model has no result for a task, which the chart marks as missing rather than drawing 0%."""
    values: dict[str, list[float]] = {}
    for model in models:
        row = []
        for task in tasks:
            sub = long[(long["task"] == task) & (long["model"] == model)]
            chosen = metric or _primary_metric(list(long[long["task"] == task]["metric"]))
            hit = sub[sub["metric"] == chosen]["value"]
            row.append(100 * float(hit.iloc[0]) if len(hit) else float("nan"))
        values[model] = row
    return values


def write_report(
    run_dirs: Sequence[str | Path],
    output_dir: str | Path,
    labels: Sequence[str] | None = None,
    runs: Sequence[RunRecord] | None = None,
    title: str = "CGD evaluation",
    notes: Sequence[str] = (),
    all_labels: Sequence[str] | None = None,
) -> Report:
    """Write ``report.md``, ``report.csv`` and ``report.png`` comparing the runs (first = baseline).

    ``run_dirs`` are lighteval ``--output-dir`` folders (or results JSON files), one per model. ``all_labels``
    names every model that was meant to run (those without results show as missing, in the table and the chart).
    A result a model lacks is "missing" in the table and a hatched, labelled gap in the chart, never 0.
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
    models = list(all_labels or labels or dict.fromkeys(long["model"]))
    wide = comparison_table(long, models)

    csv_path = output_dir / "report.csv"
    wide.reset_index().to_csv(csv_path, index=False, float_format="%.6g")

    shown = wide[wide.index.get_level_values("metric").isin(REPORT_METRICS)]
    n_by_task = long.dropna(subset=["n"]).groupby("task")["n"].max().to_dict()
    cut_by_task = long.dropna(subset=["cut"]).groupby("task")["cut"].max().to_dict()
    lines = [f"# {title}", "", f"Baseline: **{models[0]}** (Δ columns are each model minus the baseline).", ""]
    lines += [*notes, ""] if notes else []
    header = ["task", "metric", "n", "prompts cut", *models, *[f"Δ {m}" for m in models[1:]]]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
    for (task, metric), row in shown.iterrows():
        n, cut = n_by_task.get(task), cut_by_task.get(task)
        cells = [task, metric, "" if n is None else str(int(n)), "" if cut is None else str(int(cut))]
        cells += ["missing" if np.isnan(row[m]) else f"{100 * row[m]:.1f}" for m in models]
        cells += ["" if np.isnan(row[f"Δ {m}"]) else f"{100 * row[f'Δ {m}']:+.1f}" for m in models[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Values are percentages. `acc`: pass@1 (greedy) with symbolic answer checking, or option-letter",
        "accuracy for multiple choice; `critique_rate`: share of outputs that read as a critique (a",
        "`Conclusion: right|wrong` verdict or grading phrasing); `boxed_rate`: share whose last line holds",
        "a `\\boxed{}` answer; `verdict_rate`: share with a verdict line. `prompts cut`: prompts longer than the",
        "model's context, cut from the left (only with `on_prompt_cut: count`; otherwise such a run stops).",
        "`missing`: the model has no result for the task (its run failed or did not include it).",
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
        values = chart_values(long, tasks, models, metric)
        for j, model in enumerate(models):
            positions = x + (j - (len(models) - 1) / 2) * width
            bars = ax.bar(positions, values[model], width, label=model)
            for pos, value in zip(positions, values[model]):
                if np.isnan(value):  # a gap with a label, not a 0% bar
                    ax.bar(pos, 100, width, fill=False, hatch="//", edgecolor=bars.patches[0].get_facecolor(), lw=0.5)
                    ax.text(pos, 50, "missing", rotation=90, ha="center", va="center", fontsize="x-small")
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


COMMANDS = {"run": EvalArguments, "report": ReportArguments, "agreement": AgreementArguments}


def parse_args(argv: Sequence[str]) -> tuple[str, Any]:
    """``(command, arguments dataclass)`` from ``[command] [--config file.yaml] [--key value ...]``; the command
    defaults to ``run``. A bad key or value raises ``ValueError`` in one line."""
    argv = list(argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    parser = StrictParser((COMMANDS[command],), prog=f"python -m cgd.eval {command}", error=ValueError)
    (args,) = parser.parse_args_and_config(argv)
    return command, args


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (``python -m cgd.eval``, ``cgd-evaluate``)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        command, args = parse_args(sys.argv[1:] if argv is None else argv)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if command == "run":
        report = run(args)
    elif command == "report":
        report = write_report(args.run_dirs, args.output_dir, labels=args.labels)
    else:
        result = builtin_math500_agreement(args.details)
        print(json.dumps({k: v for k, v in result.items() if k != "disagreements"}, indent=2))
        for item in result["disagreements"][: args.show]:
            print(json.dumps(item, ensure_ascii=False))
        return 0
    print(report.markdown.read_text())
    print(f"wrote {report.markdown}, {report.csv}, {report.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
