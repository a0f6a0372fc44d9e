"""Builder configuration: dataclasses parsed TrlParser-style (YAML defaults, CLI overrides, unknown keys fail).

The recipe is flat: source keys, model/backend keys shared by the stages, then per-stage keys
prefixed with the stage name (``critique_temperature``, ``refine_max_tokens``...). A per-stage key left
unset falls back to the shared one (``critique_model`` -> ``teacher_model``, ``probe_backend`` -> ``backend``).
:func:`resolve_stages` turns the flat arguments into one :class:`StageSpec` per stage that runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from typing import Any

from datasets_builders.prompts import check_template, default_template

BACKENDS = ("vllm", "openai", "transformers", "reference", "dry_run")
STAGE_ROLES = {"probe": "student", "critique": "teacher", "refine": "teacher", "direct": "teacher"}


@dataclass
class SourceArgs:
    """Where the questions come from and how they are selected."""

    source_preset: str | None = field(
        default=None,
        metadata={"help": "webinstructsub | gsm8k | math | numinamath | metamathqa (fills source/columns)"},
    )
    source: str | None = field(
        default=None, metadata={"help": "Hub dataset id, local folder or file, or a builder name (json, parquet, csv)"}
    )
    source_config: str | None = field(default=None, metadata={"help": "Dataset config name (e.g. 'main' for GSM8K)"})
    source_split: str = field(default="train", metadata={"help": "Split to read"})
    data_files: list[str] | None = field(default=None, metadata={"help": "Local/Hub data files for the source"})
    question_column: str | None = field(default=None, metadata={"help": "Column holding the question"})
    answer_column: str | None = field(default=None, metadata={"help": "Column holding the reference answer, if any"})
    id_column: str | None = field(default=None, metadata={"help": "Column holding the source id (else a hash)"})
    reference_answer_format: str | None = field(
        default=None, metadata={"help": "'auto' (gold as is / #### / \\boxed) or 'final_answer' (extract it first)"}
    )
    num_samples: int | None = field(default=None, metadata={"help": "Questions to keep after cleaning (None: all)"})
    seed: int = field(default=42, metadata={"help": "Seed of the sampling, the verdict mix and sampled generation"})
    dedupe: bool = field(default=True, metadata={"help": "Drop repeated questions (normalized text)"})
    decontaminate_files: list[str] | None = field(
        default=None, metadata={"help": "Eval-set JSONL files; questions sharing an n-gram with them are dropped"}
    )
    decontaminate_fields: list[str] = field(
        default_factory=lambda: ["problem", "question"], metadata={"help": "Fields read from the eval files"}
    )
    decontaminate_ngram: int = field(default=13, metadata={"help": "n of the word n-gram overlap check"})


@dataclass
class ModelArgs:
    """Models and the backend settings the stages share (each can be overridden per stage)."""

    student_model: str | None = field(default=None, metadata={"help": "Student model (probe stage)"})
    teacher_model: str | None = field(default=None, metadata={"help": "Teacher model (critique/refine/direct)"})
    backend: str = field(default="vllm", metadata={"help": f"Default backend: {' | '.join(BACKENDS)}"})
    base_url: str | None = field(default=None, metadata={"help": "openai backend: server URL (…/v1)"})
    teacher_sees_reference: bool = field(
        default=False,
        metadata={"help": "Show the source's reference answer in the default critique/refine prompts (paper: off)"},
    )
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "openai backend: env var with the key"})
    max_concurrency: int = field(default=64, metadata={"help": "openai backend: requests in flight"})
    max_retries: int = field(default=6, metadata={"help": "openai backend: retries on 429/5xx/timeouts/connect"})
    request_timeout: float = field(default=900.0, metadata={"help": "openai backend: seconds per request"})
    tensor_parallel_size: int = field(default=1, metadata={"help": "vllm backend: GPUs per model"})
    gpu_memory_utilization: float = field(default=0.9, metadata={"help": "vllm backend"})
    max_model_len: int | None = field(default=None, metadata={"help": "vllm backend: context length"})
    dtype: str = field(default="auto", metadata={"help": "vllm/transformers dtype"})
    trust_remote_code: bool = field(default=False, metadata={"help": "vllm/transformers"})
    batch_size: int = field(default=8, metadata={"help": "transformers: generate batch; vllm: rows per checkpoint"})
    device: str | None = field(default=None, metadata={"help": "transformers backend device (default: cuda if any)"})
    student_input_price: float | None = field(default=None, metadata={"help": "USD per 1M prompt tokens (student)"})
    student_output_price: float | None = field(default=None, metadata={"help": "USD per 1M generated tokens"})
    teacher_input_price: float | None = field(default=None, metadata={"help": "USD per 1M prompt tokens (teacher)"})
    teacher_output_price: float | None = field(default=None, metadata={"help": "USD per 1M generated tokens"})


def _stage_args(stage: str, max_tokens: int, enabled: bool) -> type:
    """A dataclass with the ``<stage>_*`` keys of one stage."""
    specs: list[tuple[str, Any, Any]] = [
        (f"{stage}_enabled", bool, field(default=enabled, metadata={"help": f"Run the {stage} stage"})),
        (f"{stage}_model", str | None, field(default=None, metadata={"help": "Model (default: student/teacher)"})),
        (f"{stage}_backend", str | None, field(default=None, metadata={"help": "Backend (default: `backend`)"})),
        (f"{stage}_base_url", str | None, field(default=None, metadata={"help": "openai URL (default: `base_url`)"})),
        (f"{stage}_template", str | None, field(default=None, metadata={"help": "User-turn template override"})),
        (f"{stage}_system_prompt", str | None, field(default=None, metadata={"help": "Optional system prompt"})),
        (f"{stage}_temperature", float, field(default=0.0, metadata={"help": "0 = greedy"})),
        (f"{stage}_top_p", float, field(default=1.0, metadata={"help": "Nucleus sampling"})),
        (f"{stage}_max_tokens", int, field(default=max_tokens, metadata={"help": "Max generated tokens"})),
        (f"{stage}_n", int, field(default=1, metadata={"help": "Samples per row (>1 expands rows)"})),
        (f"{stage}_seed", int | None, field(default=None, metadata={"help": "Sampling seed (default: `seed`)"})),
    ]
    return make_dataclass(f"{stage.capitalize()}Args", specs)


ProbeArgs = _stage_args("probe", 4096, True)
CritiqueArgs = _stage_args("critique", 8192, True)
RefineArgs = _stage_args("refine", 8192, True)
DirectArgs = _stage_args("direct", 8192, False)


@dataclass
class FilterArgs:
    """Which post-generation filters run (each one is counted in the build report)."""

    filter_empty: bool = field(default=True, metadata={"help": "Drop rows with an empty generated output"})
    filter_truncated: bool = field(default=True, metadata={"help": "Drop rows with a finish_reason 'length'"})
    filter_unparsed: bool = field(default=True, metadata={"help": "Drop rows whose verdict is unparsed"})
    check_refined_answer: bool = field(
        default=False, metadata={"help": "Drop rows whose refined answer disagrees with the reference (cgd.answers)"}
    )
    verdict_mix: float | None = field(
        default=None, metadata={"help": "Fraction of 'right' verdicts to select (paper ablation); None keeps all"}
    )


@dataclass
class OutputArgs:
    """Where the dataset goes, sharding, and publishing."""

    output_dir: str = field(default="outputs/cgd-dataset", metadata={"help": "Dataset folder (+ checkpoints/)"})
    num_shards: int = field(default=1, metadata={"help": "Split the work into this many shards (one per node)"})
    shard_index: int = field(default=0, metadata={"help": "Which shard this run builds"})
    merge: bool = field(default=False, metadata={"help": "Join finished shards into the dataset (no generation)"})
    rows_per_file: int = field(default=50_000, metadata={"help": "Rows per parquet file"})
    dataset_name: str | None = field(default=None, metadata={"help": "Title of the dataset card"})
    license: str | None = field(default=None, metadata={"help": "License tag of the dataset card"})
    push_to_hub: str | None = field(default=None, metadata={"help": "Hub repo id (org/name) to upload to"})
    private: bool = field(default=False, metadata={"help": "Create the Hub repo as private"})
    progress: bool = field(default=True, metadata={"help": "Show progress bars"})
    fsync_interval_s: float = field(
        default=1.0, metadata={"help": "fsync checkpoints at most this often (0: every row); writes are per row"}
    )


ARG_CLASSES: tuple[type, ...] = (
    SourceArgs,
    ModelArgs,
    ProbeArgs,
    CritiqueArgs,
    RefineArgs,
    DirectArgs,
    FilterArgs,
    OutputArgs,
)


@dataclass
class BuildConfig:
    """All parsed argument groups, by name."""

    source: SourceArgs
    model: ModelArgs
    stages: dict[str, Any]  # stage name -> its Args dataclass instance
    filters: FilterArgs
    output: OutputArgs

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for group in (self.source, self.model, *self.stages.values(), self.filters, self.output):
            out.update(asdict(group))
        return out


@dataclass(frozen=True)
class StageSpec:
    """Everything one stage needs: model, backend settings, prompt and sampling."""

    name: str
    role: str  # "student" or "teacher"
    model: str
    backend: str
    template: str
    system_prompt: str | None
    temperature: float
    top_p: float
    max_tokens: int
    n: int
    seed: int | None
    base_url: str | None
    input_price: float | None
    output_price: float | None

    def fingerprint(self) -> str:
        """Hash of what decides a stage's outputs; a checkpoint built with another one is refused."""
        keys = ("model", "template", "system_prompt", "temperature", "top_p", "max_tokens", "n", "seed")
        blob = json.dumps({k: getattr(self, k) for k in keys}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def sampling(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "n": self.n,
            "seed": self.seed,
        }


def parse_args(argv: list[str] | None = None) -> BuildConfig:
    """Parse ``--config recipe.yaml`` plus ``--key value`` overrides (a leading ``merge`` word sets ``--merge``)."""
    from trl import TrlParser

    argv = list(argv) if argv is not None else __import__("sys").argv[1:]
    if argv and argv[0] == "merge":
        argv = [*argv[1:], "--merge", "true"]
    parser = TrlParser(ARG_CLASSES)
    groups = parser.parse_args_and_config(argv)
    source, model, probe, critique, refine, direct, filters, output = groups
    config = BuildConfig(
        source=source,
        model=model,
        stages={"probe": probe, "critique": critique, "refine": refine, "direct": direct},
        filters=filters,
        output=output,
    )
    for group in groups:
        _nulls_to_none(group)
    validate(config)
    return config


def _nulls_to_none(group: Any) -> None:
    """``--key null`` / ``--key none`` on the command line unset an optional key (YAML ``null`` already does)."""
    for f in fields(group):
        value = getattr(group, f.name)
        if isinstance(value, str) and value.lower() in ("null", "none") and f.default is None:
            setattr(group, f.name, None)


def validate(config: BuildConfig) -> None:
    """Fail early on inconsistent settings (before any model is loaded)."""
    out = config.output
    if out.num_shards < 1 or not 0 <= out.shard_index < out.num_shards:
        raise ValueError(f"shard_index must be in [0, num_shards); got {out.shard_index} of {out.num_shards}")
    mix = config.filters.verdict_mix
    if mix is not None and not 0.0 <= mix <= 1.0:
        raise ValueError(f"verdict_mix must be within [0, 1]; got {mix}")
    if config.source.decontaminate_ngram < 1:
        raise ValueError("decontaminate_ngram must be >= 1")
    if not (config.source.source or config.source.source_preset):
        raise ValueError("Set `source` (Hub id, folder or file) or `source_preset`")
    enabled = [name for name, args in config.stages.items() if getattr(args, f"{name}_enabled")]
    for name in ("probe", "critique", "refine"):
        if name not in enabled:
            raise ValueError(f"The {name} stage cannot be disabled: a CGD row needs it")
    resolve_stages(config)  # validates models, backends and templates


def resolve_stages(config: BuildConfig) -> list[StageSpec]:
    """One :class:`StageSpec` per enabled stage, in pipeline order, with shared defaults filled in."""
    m = config.model
    specs = []
    for name, args in config.stages.items():
        get = lambda key, _a=args, _n=name: getattr(_a, f"{_n}_{key}")  # noqa: E731
        if not get("enabled"):
            continue
        role = STAGE_ROLES[name]
        backend = get("backend") or m.backend
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r} for the {name} stage; choose one of {BACKENDS}")
        model = get("model") or (m.student_model if role == "student" else m.teacher_model)
        if backend == "reference":  # the rule-based teacher has no model to load: it names itself
            from datasets_builders.backends.reference_teacher import stage_model

            model = stage_model(name, get("model"))
        if not model:
            raise ValueError(f"No model for the {name} stage: set `{role}_model` or `{name}_model`")
        base_url = get("base_url") or m.base_url
        if backend == "openai" and not base_url:
            raise ValueError(f"The {name} stage uses the openai backend: set `base_url` or `{name}_base_url`")
        template = get("template") or default_template(name, m.teacher_sees_reference)
        check_template(name, template)
        if m.teacher_sees_reference and name in ("critique", "refine") and "{reference_answer}" not in template:
            raise ValueError(f"teacher_sees_reference is on but `{name}_template` has no {{reference_answer}}")
        if get("n") < 1 or get("max_tokens") < 1:
            raise ValueError(f"{name}_n and {name}_max_tokens must be >= 1")
        specs.append(
            StageSpec(
                name=name,
                role=role,
                model=model,
                backend=backend,
                template=template,
                system_prompt=get("system_prompt"),
                temperature=get("temperature"),
                top_p=get("top_p"),
                max_tokens=get("max_tokens"),
                n=get("n"),
                seed=get("seed") if get("seed") is not None else config.source.seed,
                base_url=base_url,
                input_price=getattr(m, f"{role}_input_price"),
                output_price=getattr(m, f"{role}_output_price"),
            )
        )
    return specs


def stage_field_names() -> list[str]:
    """Every recipe key (for docs and tests)."""
    return [f.name for cls in ARG_CLASSES for f in fields(cls)]
