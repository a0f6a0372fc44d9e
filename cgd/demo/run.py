"""The main job: CGD on the embedded SmolLM2-135M-Instruct, offline, on CPU, with a held-out report you can trust.

    python -m cgd.demo             # or: make demo   (model -> questions -> build -> train cgd -> evaluate -> report)
    python -m cgd.demo --study     # or: make study  (SFT, distilled SFT, CFT, CGD, no-critique and the two critique
                                   #                   ablations on the same build, scored together, claim lines)

A plain script: each step below runs unless its result is already in ``--workdir`` (default ``outputs/demo``); a
step killed half-way resumes on its own (the builder from its per-stage checkpoints, the trainer from its last
checkpoint). ``<workdir>/settings.json`` records the settings the results were made with; a rerun with other
settings stops and says which, instead of mixing results.

1. model      the embedded checkpoint, converted once into ``cache/models/SmolLM2-135M-Instruct``
2. questions  ``questions/{train,eval}.jsonl``: generated problems with exact answers and worked solutions
3. build      ``dataset/``: SmolLM2 answers (real drafts), the rule-based reference teacher critiques and refines
4. train      ``models/<recipe>/``: ``accelerate launch -m cgd.train --config recipes/smollm2-135m/<recipe>.yaml``
5. eval       ``eval/<name>/``: base and each trained model on the held-out split (cgd.eval runner, lighteval,
              prompts never cut)
6. report     ``report.{md,json,png}``: every metric with a 95% interval, paired differences to the base model,
              what changed in one sentence, and (study) one line per claim of the paper
"""

from __future__ import annotations

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
from typing import Any

from cgd.demo import parse_arguments

REPO_ROOT = Path(__file__).resolve().parents[2]
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # Idle OpenMP threads sleep instead of spinning: on a busy CPU, spinning made generation ~10x slower.
    "OMP_WAIT_POLICY": "PASSIVE",
}
EVAL_TASK = "cgd_arith"
CUSTOM_TASKS = REPO_ROOT / "eval_tasks" / "embedded_tasks.py"
DEMO_RECIPES = ["cgd"]
#: The study: every baseline and ablation of the paper the build supports, each a recipe in ``recipe_dir``.
STUDY_RECIPES = [
    "sft",
    "distilled_sft",
    "cft",
    "cgd",
    "cgd_no_critique",
    "cgd_irrelevant_critique",
    "cgd_generic_critique",
]
#: Settings that decide the results in a workdir; a rerun that changes one of them is refused.
DECIDING = (
    "model", "num_train", "num_eval", "seed", "builder_config", "builder_args", "recipe_dir", "train_args",
    "eval_max_new_tokens",
)  # fmt: skip


@dataclass
class DemoArguments:
    """Settings of ``python -m cgd.demo`` (each a flag, or a key of a YAML file given with ``--config``)."""

    workdir: str = field(default="outputs/demo", metadata={"help": "Where every result goes."})
    cache_dir: str = field(default="cache/models", metadata={"help": "Where the embedded model is converted to."})
    model: str | None = field(
        default=None, metadata={"help": "Student checkpoint or Hub id (default: the embedded SmolLM2-135M-Instruct)."}
    )
    num_train: int = field(
        default=64, metadata={"help": "Questions the dataset is built from (the student's drafts)."}
    )
    num_eval: int = field(default=100, metadata={"help": "Held-out questions every model is scored on."})
    seed: int = field(default=0, metadata={"help": "Seed of the question set and of the bootstrap."})
    builder_config: str = field(default="recipes/builders/smollm2_demo.yaml", metadata={"help": "Builder recipe."})
    builder_args: str = field(default="", metadata={"help": 'Extra builder flags, e.g. "--probe_max_tokens 96".'})
    accelerate_config: str = field(
        default="recipes/accelerate_configs/cpu.yaml", metadata={"help": "accelerate config."}
    )
    recipe_dir: str = field(
        default="recipes/smollm2-135m", metadata={"help": "Folder of <recipe>.yaml training recipes."}
    )
    recipes: list[str] | None = field(
        default=None,
        metadata={"help": f"Recipes to train (default {' '.join(DEMO_RECIPES)}; --study: {' '.join(STUDY_RECIPES)})."},
    )
    study: bool = field(default=False, metadata={"help": "Train and compare every recipe of the study."})
    train_args: str = field(default="", metadata={"help": 'Extra cgd.train flags, e.g. "--num_train_epochs 1".'})
    eval_max_new_tokens: int = field(default=256, metadata={"help": "New tokens per held-out answer."})
    eval_batch_size: int = field(default=32, metadata={"help": "Held-out questions per generation batch."})
    num_bootstrap: int = field(default=2000, metadata={"help": "Bootstrap resamples for the paired intervals."})

    def resolved(self) -> DemoArguments:
        """Paths made absolute: outputs from the current folder, recipes from it or else from the repository."""
        out = DemoArguments(**asdict(self))
        for name in ("workdir", "cache_dir"):
            setattr(out, name, str(_absolute(getattr(self, name), Path.cwd())))
        for name in ("builder_config", "accelerate_config", "recipe_dir"):
            value = Path(getattr(self, name)).expanduser()
            here = value if value.is_absolute() else Path.cwd() / value
            setattr(out, name, str(here if here.exists() else REPO_ROOT / value))
        if self.model and (Path(self.model).exists() or self.model.startswith((".", "/", "~"))):
            out.model = str(_absolute(self.model, Path.cwd()))
        out.recipes = list(self.recipes or (STUDY_RECIPES if self.study else DEMO_RECIPES))
        return out


def _absolute(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


# --- running and timing ---------------------------------------------------------------------------------


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Offline settings and the repository on PYTHONPATH (works before ``pip install -e .``)."""
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in OFFLINE_ENV.items()}, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_logged(cmd: list[str], log_path: Path) -> None:
    """Run ``cmd`` from the repository root, its output streamed to the terminal and appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ {shlex.join(cmd)}", flush=True)
    with open(log_path, "ab") as log:
        log.write(f"\n$ {shlex.join(cmd)}\n".encode())
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(65536):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            log.write(chunk)
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"exit code {code} from {shlex.join(cmd)} (log: {log_path})")


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: steadier than wall time on a shared machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Timings:
    """Wall and CPU seconds per step, kept in ``timings.json`` so a reused step still shows what it cost."""

    def __init__(self, path: Path):
        self.path = path
        self.recorded: dict[str, dict] = json.loads(path.read_text()) if path.is_file() else {}
        self.rows: list[dict[str, Any]] = []

    def step(self, name: str, done: bool, fn: Callable[..., Any], *fn_args: Any) -> None:
        """Run ``fn(*fn_args)`` and time it, unless ``done`` (then it is reported as reused, with its recorded cost)."""
        print(f"\n== {name} " + ("(done, reused) " if done else "") + "=" * max(0, 60 - len(name)), flush=True)
        if done:
            before = self.recorded.get(name, {})
            self.rows.append({"phase": name, "status": "reused", "seconds": before.get("seconds", 0.0),
                              "cpu_seconds": before.get("cpu_seconds", 0.0)})  # fmt: skip
            return
        t0, c0 = time.perf_counter(), cpu_seconds()
        try:
            fn(*fn_args)
        except BaseException:
            self.rows.append({"phase": name, "status": "failed", "seconds": round(time.perf_counter() - t0, 1),
                              "cpu_seconds": round(cpu_seconds() - c0, 1)})  # fmt: skip
            raise
        row = {"phase": name, "status": "ran", "seconds": round(time.perf_counter() - t0, 1),
               "cpu_seconds": round(cpu_seconds() - c0, 1)}  # fmt: skip
        self.rows.append(row)
        # Re-read before writing: another run in the same workdir (a study beside the demo) may have added steps.
        self.recorded = {**(json.loads(self.path.read_text()) if self.path.is_file() else {}), **self.recorded}
        self.recorded[name] = {k: row[k] for k in ("seconds", "cpu_seconds")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.recorded, indent=2) + "\n")
        tmp.replace(self.path)
        print(f"{name}: {row['seconds']:.0f} s wall, {row['cpu_seconds']:.0f} s CPU", flush=True)


# --- what is finished -----------------------------------------------------------------------------------


def dataset_done(path: Path) -> bool:
    """A finished build: the card and at least one data file."""
    return (path / "README.md").is_file() and any((path / "data").glob("*.parquet"))


def model_done(path: Path) -> bool:
    """A finished training run: final weights, config and tokenizer in the output folder."""
    return (path / "config.json").is_file() and any(path.glob("*.safetensors")) and (path / "tokenizer.json").is_file()


def eval_done(path: Path) -> bool:
    return any(path.rglob(f"details_{EVAL_TASK}|*.parquet"))


def check_settings(args: DemoArguments, path: Path) -> None:
    """Refuse to mix results made with other settings into ``workdir`` (one line saying which setting differs)."""
    now = {k: getattr(args, k) for k in DECIDING}
    if path.is_file():
        before = json.loads(path.read_text())
        changed = [k for k in DECIDING if k in before and before[k] != now[k]]
        if changed:
            what = ", ".join(f"{k}: {before[k]!r} then, {now[k]!r} now" for k in changed)
            raise SystemExit(
                f"cgd.demo: error: {path.parent} holds results made with other settings ({what}); "
                "use another --workdir, or delete that folder to start over."
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(now, indent=2) + "\n")


# --- the steps ------------------------------------------------------------------------------------------


def write_questions(args: DemoArguments, questions_dir: Path, eval_file: Path) -> None:
    """The generated splits, and the held-out one where the ``cgd_arith`` task reads it (``CGD_EVAL_DATA_DIR``)."""
    from cgd.demo import questions

    paths = questions.write_splits(questions_dir, args.num_train, args.num_eval, args.seed)
    eval_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(paths["eval"], eval_file)


def build(args: DemoArguments, model: Path, questions_file: Path, dataset: Path, logs: Path) -> None:
    """The builder with the demo recipe on the generated questions (resumes from its checkpoints)."""
    cmd = [
        sys.executable, "datasets_builders/build_cgd.py", "--config", args.builder_config,
        "--source", str(questions_file), "--num_samples", str(args.num_train), "--seed", str(args.seed),
        "--student_model", str(model), "--output_dir", str(dataset), *shlex.split(args.builder_args),
    ]  # fmt: skip
    run_logged(cmd, logs / "build.log")


def train(args: DemoArguments, recipe: str, model: Path, dataset: Path, out: Path, logs: Path) -> None:
    """``accelerate launch -m cgd.train`` with the recipe (resumes from its last checkpoint)."""
    recipe_file = Path(args.recipe_dir) / f"{recipe}.yaml"
    if not recipe_file.is_file():
        raise SystemExit(f"cgd.demo: error: no recipe {recipe_file}; --recipes names files of --recipe_dir")
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", args.accelerate_config,
        "-m", "cgd.train", "--config", str(recipe_file),
        "--model_name_or_path", str(model), "--dataset_name", str(dataset), "--output_dir", str(out),
        "--seed", str(args.seed + 42), *shlex.split(args.train_args),
    ]  # fmt: skip
    run_logged(cmd, logs / f"train_{recipe}.log")


def evaluate(args: DemoArguments, name: str, model: Path, eval_root: Path, out: Path) -> None:
    """Score one model on the held-out split with the evaluation runner (lighteval; a prompt is never cut)."""
    import torch

    from cgd.eval.runner import evaluate_models

    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    evaluate_models(
        [str(model)],
        EVAL_TASK,
        out,
        labels=[name],
        data_dir=str(eval_root),
        max_new_tokens=args.eval_max_new_tokens,
        batch_size=args.eval_batch_size,
        device=None if torch.cuda.is_available() else "cpu",
        dtype="float32",
        temperature=0.0,
        custom_tasks=str(CUSTOM_TASKS),
        stream_output=True,
    )
    if not eval_done(out):
        raise RuntimeError(f"the evaluation of {name} wrote no details under {out} (log: {out / 'runs'})")


def scores(name: str, folder: Path):
    """One model's per-question scores for the report; a missing evaluation stays visibly missing."""
    from cgd.demo.report import ModelScores, load_details

    try:
        per_question, cut = load_details(folder, EVAL_TASK)
    except FileNotFoundError as err:
        return ModelScores(name, None, note=str(err))
    return ModelScores(name, per_question, cut)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the job; returns the report's JSON payload (also in ``<workdir>/report.json``)."""
    args = parse_arguments(DemoArguments, argv, "python -m cgd.demo").resolved()
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    from cgd.demo import embedded
    from cgd.demo import report as demo_report

    root = Path(args.workdir)
    logs, dataset, models_dir, eval_dir = root / "logs", root / "dataset", root / "models", root / "eval"
    questions_dir, eval_root = root / "questions", root / "eval_data"
    check_settings(args, root / "settings.json")
    timings = Timings(root / "timings.json")
    started = time.perf_counter()
    print(f"CGD main job{' (study)' if args.study else ''}: {', '.join(args.recipes)} -> {root}", flush=True)

    model = Path(args.model) if args.model else embedded.model_dir(args.cache_dir)
    timings.step("model", args.model is not None or embedded.is_converted(args.cache_dir), embedded.convert,
                 args.cache_dir)  # fmt: skip
    eval_file = eval_root / "arith" / "test.jsonl"
    timings.step("questions", (questions_dir / "train.jsonl").is_file() and eval_file.is_file(), write_questions,
                 args, questions_dir, eval_file)  # fmt: skip
    timings.step("build", dataset_done(dataset), build, args, model, questions_dir / "train.jsonl", dataset, logs)

    failed: list[str] = []  # a recipe that fails does not stop the others; the report shows it missing
    for recipe in args.recipes:
        try:
            done = model_done(models_dir / recipe)
            timings.step(f"train_{recipe}", done, train, args, recipe, model, dataset, models_dir / recipe, logs)
        except RuntimeError as err:
            failed.append(f"train_{recipe}: {err}")

    names = {"base": model, **{r: models_dir / r for r in args.recipes}}
    for name, path in names.items():
        if name != "base" and not model_done(path):
            continue  # its training failed: nothing to score
        try:
            timings.step(f"eval_{name}", eval_done(eval_dir / name), evaluate, args, name, path, eval_root,
                         eval_dir / name)  # fmt: skip
        except RuntimeError as err:
            failed.append(f"eval_{name}: {err}")

    title = (
        f"CGD {'study' if args.study else 'main job'}: {model.name}, {args.num_eval} held-out questions "
        f"({EVAL_TASK}), {args.eval_max_new_tokens} new tokens"
    )
    models = [scores(name, eval_dir / name) for name in names]
    total = {"phase": "total", "status": "", "seconds": round(time.perf_counter() - started, 1)}
    total["cpu_seconds"] = round(sum(r["cpu_seconds"] for r in timings.rows if r["status"] == "ran"), 1)
    payload = demo_report.write(models, root, title, [*timings.rows, total], args.num_bootstrap, args.seed)
    print("\n" + (root / "report.md").read_text())
    print(f"report: {root / 'report.md'} (chart {root / 'report.png'}); dataset {dataset}; logs {logs}")
    if failed:
        raise SystemExit("cgd.demo: error: these steps failed (their results are missing from the report):\n  "
                         + "\n  ".join(failed))  # fmt: skip
    return payload


def cli() -> None:
    """Console entry point (``cgd-demo``): exits 0 on success (``main`` returns the report to callers)."""
    main()


if __name__ == "__main__":
    cli()
