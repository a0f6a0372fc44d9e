"""Builder configuration: dataclasses parsed TrlParser-style (YAML defaults, CLI overrides, unknown keys fail).

The recipe is flat: source keys, model/backend keys shared by the stages, then per-stage keys
prefixed with the stage name (``critique_temperature``, ``refine_max_tokens``...). A per-stage key left
unset falls back to the shared one (``critique_model`` -> ``teacher_model``, ``probe_backend`` -> ``backend``).
:func:`resolve_stages` turns the flat arguments into one :class:`StageSpec` per stage that runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from typing import Any

from cgd.cli import StrictParser
from datasets_builders.prompts import check_template, default_template

BACKENDS = ("vllm", "openai", "transformers", "reference", "dry_run")
STAGE_ROLES = {"probe": "student", "critique": "teacher", "refine": "teacher", "direct": "teacher"}
AUTO = "auto"  # column keys: the preset's column, else the conventional one when the source has it


class ConfigError(ValueError):
    """A recipe or command line that cannot run: unreadable YAML, an unknown key, a value of the wrong type or range."""


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
    answer_column: str | None = field(
        default=AUTO,
        metadata={
            "help": "Column holding the reference answer; 'auto': the preset's, else `answer` if present; null: none"
        },
    )
    id_column: str | None = field(
        default=AUTO,
        metadata={
            "help": "Column holding a unique source id; 'auto': the preset's, else `id` if present; null: none "
            "(ids then hash the question)"
        },
    )
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
    push_to_hub_revision: str | None = field(
        default=None, metadata={"help": "Branch of the Hub repo to upload to (created from main if missing)"}
    )
    private: bool = field(default=False, metadata={"help": "Create the Hub repo as private"})
    progress: bool = field(default=True, metadata={"help": "Show progress bars"})
    report_to: str = field(
        default="none",
        metadata={"help": "trackio: log rows/s, tokens, verdict mix and teacher accuracy to trackio; none: do not"},
    )
    project: str = field(default="cgd-builders", metadata={"help": "Tracker project (report_to)"})
    run_name: str | None = field(default=None, metadata={"help": "Tracker run name (default: output_dir's name)"})
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


#: Allowed range of each numeric key: (low, low inclusive, high, high inclusive). Stage keys are listed without
#: their ``<stage>_`` prefix. ``None`` (an unset optional key) always passes.
RANGES: dict[str, tuple[float | None, bool, float | None, bool]] = {
    "num_samples": (1, True, None, False),
    "seed": (0, True, None, False),
    "decontaminate_ngram": (1, True, None, False),
    "max_concurrency": (1, True, None, False),
    "max_retries": (0, True, None, False),
    "request_timeout": (0, False, None, False),
    "tensor_parallel_size": (1, True, None, False),
    "gpu_memory_utilization": (0, False, 1, True),
    "max_model_len": (1, True, None, False),
    "batch_size": (1, True, None, False),
    "student_input_price": (0, True, None, False),
    "student_output_price": (0, True, None, False),
    "teacher_input_price": (0, True, None, False),
    "teacher_output_price": (0, True, None, False),
    "temperature": (0, True, None, False),
    "top_p": (0, False, 1, True),
    "max_tokens": (1, True, None, False),
    "n": (1, True, None, False),
    "verdict_mix": (0, True, 1, True),
    "num_shards": (1, True, None, False),
    "shard_index": (0, True, None, False),
    "rows_per_file": (1, True, None, False),
    "fsync_interval_s": (0, True, None, False),
}
_SECRET_KEY = re.compile(r"key|secret|password|(^|_)token(_|$)", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def redact_url(url: str | None) -> str | None:
    """``url`` without the password of a ``user:password@host`` part (safe to print or log)."""
    if not url:
        return url
    return re.sub(r"//([^/@:]*):[^/@]*@", r"//\1:***@", url)


def _range_of(name: str) -> tuple[float | None, bool, float | None, bool] | None:
    if name in RANGES:
        return RANGES[name]
    stage, _, key = name.partition("_")
    return RANGES.get(key) if stage in STAGE_ROLES else None


def _shown(name: str, value: Any) -> str:
    """A value as an error message may show it (never the value of a key that may hold a secret)."""
    return "(value not shown)" if _SECRET_KEY.search(name) else f"(got {value!r})"


def make_parser() -> StrictParser:
    """The shared strict ``TrlParser`` over the builder's dataclasses: every error line starts with where it comes
    from (``Command line`` or ``Recipe <file>``) and is a :class:`ConfigError` (exit code 2)."""
    return StrictParser(
        ARG_CLASSES, prog="python datasets_builders/build_cgd.py", error=ConfigError, located=True, quote="`"
    )


def _matches(value: Any, tp: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the annotation ``tp`` (an int is accepted, and converted, where a float is due)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            ok, converted = _matches(value, arm)
            if ok:
                return True, converted
        return False, value
    if tp is type(None):
        return value is None, value
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_matches(v, item)[0] for v in value), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    return True, value


def _type_name(tp: Any) -> str:
    text = str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")
    return text.replace("NoneType", "null").replace("None", "null")


def check_values(groups: Sequence[Any], where: dict[str, str]) -> None:
    """Every field has its declared type and lies in its allowed range (:data:`RANGES`), else one clear line."""
    for group in groups:
        hints = typing.get_type_hints(type(group))
        for f in fields(group):
            value = getattr(group, f.name)
            ok, converted = _matches(value, hints[f.name])
            src = where.get(f.name, "Recipe")
            if not ok:
                raise ConfigError(f"{src}: `{f.name}` must be {_type_name(hints[f.name])} {_shown(f.name, value)}")
            setattr(group, f.name, converted)
            bounds = _range_of(f.name)
            if bounds is None or converted is None or isinstance(converted, (bool, str)):
                continue
            low, low_in, high, high_in = bounds
            bad = isinstance(converted, float) and not math.isfinite(converted)
            bad |= low is not None and (converted < low if low_in else converted <= low)
            bad |= high is not None and (converted > high if high_in else converted >= high)
            if bad:
                span = [f">= {low}" if low_in else f"> {low}"] if low is not None else []
                span += [f"<= {high}" if high_in else f"< {high}"] if high is not None else []
                raise ConfigError(f"{src}: `{f.name}` must be {' and '.join(span)} {_shown(f.name, converted)}")


def parse_args(argv: list[str] | None = None) -> BuildConfig:
    """Parse ``--config recipe.yaml`` plus ``--key value`` overrides (a leading ``merge`` word sets ``--merge``).

    Like ``cgd.train``: unknown keys (with a suggestion) and abbreviated flags are refused, and every value is
    checked for type and range here, before any data or model is touched. Errors are :class:`ConfigError`.
    """
    argv = list(argv) if argv is not None else sys.argv[1:]
    if argv and argv[0] == "merge":
        argv = [*argv[1:], "--merge", "true"]
    parser = make_parser()
    groups = parser.parse_args_and_config(argv)
    for group in groups:
        _nulls_to_none(group)
    where = {f.name: parser.origin(f.name) for g in groups for f in fields(g)}
    check_values(groups, where)
    source, model, probe, critique, refine, direct, filters, output = groups
    config = BuildConfig(
        source=source,
        model=model,
        stages={"probe": probe, "critique": critique, "refine": refine, "direct": direct},
        filters=filters,
        output=output,
    )
    validate(config)
    return config


def _nulls_to_none(group: Any) -> None:
    """``--key null`` / ``--key none`` on the command line unset an optional key (YAML ``null`` already does)."""
    for f in fields(group):
        value = getattr(group, f.name)
        if isinstance(value, str) and value.lower() in ("null", "none") and f.default in (None, AUTO):
            setattr(group, f.name, None)


def validate(config: BuildConfig) -> None:
    """Fail early on inconsistent settings (before any data or model is loaded); raises :class:`ConfigError`."""
    from urllib.parse import urlsplit

    out = config.output
    if not 0 <= out.shard_index < out.num_shards:
        raise ConfigError(f"`shard_index` must be in [0, num_shards); got {out.shard_index} of {out.num_shards}")
    if not (config.source.source or config.source.source_preset):
        raise ConfigError("Set `source` (Hub id, folder or file) or `source_preset`")
    if not _ENV_NAME.match(config.model.api_key_env):
        raise ConfigError(
            "`api_key_env` must be the NAME of the environment variable holding the API key, e.g. OPENAI_API_KEY "
            "(the value given is not a variable name and is not shown); export the key in that variable"
        )
    urls = [config.model.base_url] + [getattr(a, f"{n}_base_url") for n, a in config.stages.items()]
    for url in filter(None, urls):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"`base_url` {redact_url(url)!r} is not an http(s) URL such as http://127.0.0.1:8000/v1")
    if out.report_to not in ("none", "trackio"):
        raise ConfigError(f"`report_to` must be trackio or none (got {out.report_to!r})")
    if out.push_to_hub_revision and not out.push_to_hub:
        raise ConfigError("`push_to_hub_revision` needs `push_to_hub` (the repo id, org/name)")
    if out.push_to_hub:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(out.push_to_hub)
        except HFValidationError as err:
            raise ConfigError(f"`push_to_hub` {out.push_to_hub!r} is not a Hub repo id (org/name): {err}") from None
        if "/" not in out.push_to_hub:
            raise ConfigError(f"`push_to_hub` {out.push_to_hub!r} needs an owner: org/name or user/name")
    enabled = [name for name, args in config.stages.items() if getattr(args, f"{name}_enabled")]
    for name in ("probe", "critique", "refine"):
        if name not in enabled:
            raise ConfigError(f"The {name} stage cannot be disabled: a CGD row needs it")
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
            raise ConfigError(f"Unknown backend {backend!r} for the {name} stage; choose one of {BACKENDS}")
        model = get("model") or (m.student_model if role == "student" else m.teacher_model)
        if backend == "reference":  # the rule-based teacher has no model to load: it names itself
            from datasets_builders.backends.reference_teacher import stage_model

            model = stage_model(name, get("model"))
        if not model:
            raise ConfigError(f"No model for the {name} stage: set `{role}_model` or `{name}_model`")
        base_url = get("base_url") or m.base_url
        if backend == "openai" and not base_url:
            raise ConfigError(f"The {name} stage uses the openai backend: set `base_url` or `{name}_base_url`")
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
