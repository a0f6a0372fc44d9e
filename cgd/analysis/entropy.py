"""Refinement-uncertainty analysis: does the critique inform the student about the refined answer?

For a model and a CGD dataset, one teacher-forced pass per condition scores the refined answer ŷ under

- ``x``              -- the question only (the inference-time / distilled-SFT rendering);
- ``x+y'``           -- question + initial answer (the ``cgd_no_critique`` rendering);
- ``x+y'+c``         -- question + initial answer + critique (the ``cgd`` rendering);
- ``x+y'+c_shuffled`` -- the ``cgd`` rendering with the critique of another row (a seeded derangement).

Every condition is rendered exactly as training renders it (:mod:`cgd.templates`: prompt and completion
tokenized separately, no special tokens added) and only the completion tokens -- ŷ and the chat
template's end-of-turn token, i.e. the positions training puts loss on -- are scored. Those tokens are
checked to be identical across the four conditions. Per token we take the entropy of the predictive
distribution and the negative log-likelihood of the actual token; per row we average over its tokens;
per condition we average the per-row means over rows, with 95% percentile-bootstrap intervals over
rows (paired for the differences between conditions). The paper's claim is the ordering
H(ŷ|x,y',c) < H(ŷ|x,y') < H(ŷ|x), with the shuffled critique as the control.

Run ``python -m cgd.analysis.entropy --model PATH_OR_ID --dataset PATH_OR_ID [--num_rows N]`` (or
``accelerate launch -m cgd.analysis.entropy ...`` to split the rows over processes); see docs/entropy.md.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cgd import schema
from cgd.ablations import derangement  # noqa: F401 - also this module's public name
from cgd.stats import bootstrap_interval
from cgd.templates import PromptTemplates

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Condition:
    """One conditioning context for ŷ: the training method whose rendering it uses."""

    name: str
    label: str
    method: str
    shuffled_critique: bool = False


CONDITIONS: tuple[Condition, ...] = (
    Condition("question", "x", "distilled_sft"),
    Condition("question_initial", "x+y'", "cgd_no_critique"),
    Condition("question_initial_critique", "x+y'+c", "cgd"),
    Condition("question_initial_shuffled_critique", "x+y'+c_shuffled", "cgd", shuffled_critique=True),
)
CONDITION_BY_NAME = {c.name: c for c in CONDITIONS}

#: Paired comparisons reported as ``a − b`` (negative: conditioning on ``a`` lowers uncertainty).
PAIRS: tuple[tuple[str, str], ...] = (
    ("question_initial", "question"),
    ("question_initial_critique", "question_initial"),
    ("question_initial_critique", "question"),
    ("question_initial_critique", "question_initial_shuffled_critique"),
    ("question_initial_shuffled_critique", "question_initial"),
)
METRICS: tuple[str, ...] = ("entropy", "nll")


@dataclass
class EntropyArguments:
    """Arguments of ``python -m cgd.analysis.entropy`` (also accepted from a YAML file with ``--config``)."""

    model: str = field(metadata={"help": "Model to score: Hub id or local checkpoint (before or after training)."})
    dataset: str = field(metadata={"help": "CGD dataset: Hub id, local directory or data file (JSONL/Parquet)."})
    dataset_split: str = field(default="train", metadata={"help": "Dataset split."})
    data_files: str | None = field(default=None, metadata={"help": "Data files inside `dataset`, if needed."})
    num_rows: int | None = field(default=None, metadata={"help": "Score only the first N valid rows."})
    output_dir: str = field(default="outputs/entropy", metadata={"help": "Where the tables and plot go."})
    batch_size: int = field(default=8, metadata={"help": "Sequences per forward pass (sorted by length)."})
    dtype: str = field(
        default="auto",
        metadata={
            "help": "auto (bf16 on GPU, fp32 on CPU), bf16, fp16 or fp32.",
            "choices": ["auto", "bf16", "fp16", "fp32"],
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed of the critique shuffle and of the bootstrap."})
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Training's max_length: longer inputs are shortened as in training (the target never is); "
            "rows whose target cannot fit are dropped from every condition. Unset: no limit."
        },
    )
    truncation_marker: str | None = field(default=None, metadata={"help": "Training's truncation marker."})
    logit_chunk_size: int = field(default=512, metadata={"help": "Target positions per LM-head chunk."})
    num_bootstrap: int = field(default=2000, metadata={"help": "Bootstrap resamples for the 95%% intervals."})
    attn_implementation: str | None = field(default=None, metadata={"help": "e.g. sdpa, eager."})
    distilled_sft_template: str | None = field(
        default=None, metadata={"help": "Question-only template (condition x), as the training recipe sets it."}
    )
    cgd_no_critique_template: str | None = field(default=None, metadata={"help": "Template of condition x+y'."})
    cgd_template: str | None = field(default=None, metadata={"help": "Template of conditions x+y'+c (and shuffled)."})
    system_prompt: str | None = field(default=None, metadata={"help": "System message, as in training."})
    plain_prompt_template: str | None = field(default=None, metadata={"help": "Layout without a chat template."})
    no_progress: bool = field(default=False, metadata={"help": "Hide progress bars."})

    def templates(self) -> PromptTemplates:
        return PromptTemplates.from_overrides(
            {
                "distilled_sft": self.distilled_sft_template,
                "cgd": self.cgd_template,
                "cgd_no_critique": self.cgd_no_critique_template,
                "system_prompt": self.system_prompt,
                "plain_prompt": self.plain_prompt_template,
            }
        )


@dataclass
class Example:
    """One (row, condition) sequence: prompt + completion ids, labels -100 outside the completion."""

    row: int
    condition: str
    input_ids: list[int]
    labels: list[int]

    @property
    def target_ids(self) -> list[int]:
        return [t for t in self.labels if t != IGNORE_INDEX]


# --------------------------------------------------------------------------------------------------
# Rendering


def condition_view(row: dict[str, Any], condition: Condition, shuffled_critique: str | None = None) -> dict[str, Any]:
    """The row as ``condition``'s training method reads it: ŷ as the target, the other row's critique if shuffled.

    The question-only condition reuses the ``distilled_sft`` rendering (x alone, as at inference) with the
    refined answer put in its target column.
    """
    view = dict(row)
    view[schema.get_method(condition.method).target] = row[schema.REFINED_RESPONSE]
    if condition.shuffled_critique:
        view[schema.CRITIQUE] = shuffled_critique
    return view


def build_examples(
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    templates: PromptTemplates | None = None,
    seed: int = 42,
    max_length: int | None = None,
    truncation_marker: str | None = None,
) -> tuple[list[Example], list[int]]:
    """Encode every row under every condition with training's :class:`~cgd.collator.CGDEncoder`.

    Returns the examples and the indices of the rows kept. With ``max_length`` the inputs are shortened
    as in training (the target never is); a row that some condition cannot fit is dropped from all of
    them, so every condition scores the same rows. Raises if a row's target tokens differ between conditions.
    """
    from cgd.collator import CGDEncoder

    templates = templates or PromptTemplates()
    marker = {} if truncation_marker is None else {"truncation_marker": truncation_marker}
    encoders = {c.method: CGDEncoder(tokenizer, c.method, max_length, templates, **marker) for c in CONDITIONS}
    perm = derangement(len(rows), seed)
    examples: list[Example] = []
    kept: list[int] = []
    for i, row in enumerate(rows):
        row_examples = []
        for cond in CONDITIONS:
            view = condition_view(row, cond, rows[perm[i]][schema.CRITIQUE])
            encoded = encoders[cond.method].encode(view)
            if encoded is None:
                break
            row_examples.append(Example(i, cond.name, encoded["input_ids"], encoded["labels"]))
        else:
            if len({tuple(e.target_ids) for e in row_examples}) != 1:
                raise RuntimeError(f"Row {i}: the refined-answer tokens differ between conditions.")
            examples.extend(row_examples)
            kept.append(i)
    return examples, kept


# --------------------------------------------------------------------------------------------------
# Scoring


def token_stats(
    model: Any, input_ids: Any, attention_mask: Any, labels: Any, chunk_size: int = 512
) -> tuple[Any, Any, Any]:
    """Per-sequence sums of token entropy and NLL over the labelled positions, and their counts.

    The decoder runs once over the batch; the LM head and the float32 log-softmax over the vocabulary
    run only at the scored positions, ``chunk_size`` positions at a time, so no [B, T, V] tensor is built.
    Returns three float64 tensors of shape [B] (entropy sum, NLL sum, number of tokens).
    """
    import torch

    hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    shift_labels = labels[:, 1:]
    mask = shift_labels != IGNORE_INDEX
    seq_of = mask.nonzero()[:, 0]
    states = hidden[:, :-1][mask]
    targets = shift_labels[mask]
    ent = torch.empty(len(targets), dtype=torch.float64, device=states.device)
    nll = torch.empty_like(ent)
    for start in range(0, len(targets), chunk_size):
        stop = start + chunk_size
        logits = head(states[start:stop]).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        logp = torch.log_softmax(logits, dim=-1)
        plogp = torch.where(logp > -math.inf, logp.exp() * logp, 0.0)  # 0·log 0 = 0 for masked-out tokens
        ent[start:stop] = -plogp.sum(-1).double()
        nll[start:stop] = -logp.gather(-1, targets[start:stop, None]).squeeze(-1).double()
    batch = labels.shape[0]
    zeros = torch.zeros(batch, dtype=torch.float64, device=states.device)
    counts = zeros.index_add(0, seq_of, torch.ones_like(ent))
    return zeros.index_add(0, seq_of, ent), zeros.index_add(0, seq_of, nll), counts


def _batches(examples: Sequence[Example], batch_size: int) -> Iterator[list[Example]]:
    ordered = sorted(examples, key=lambda e: len(e.input_ids), reverse=True)  # longest first: OOM shows early
    for start in range(0, len(ordered), batch_size):
        yield ordered[start : start + batch_size]


def score_examples(
    model: Any,
    examples: Sequence[Example],
    batch_size: int = 8,
    chunk_size: int = 512,
    pad_token_id: int = 0,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Score each example (right-padded, length-sorted batches); one record per example, in input order."""
    import torch
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    results: dict[tuple[int, str], dict[str, Any]] = {}
    total = math.ceil(len(examples) / batch_size)
    with torch.inference_mode():
        for batch in tqdm(_batches(examples, batch_size), total=total, desc="scoring", disable=not progress):
            width = max(len(e.input_ids) for e in batch)
            ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
            labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for b, e in enumerate(batch):
                n = len(e.input_ids)
                ids[b, :n] = torch.tensor(e.input_ids)
                labels[b, :n] = torch.tensor(e.labels)
                mask[b, :n] = 1
            ent, nll, cnt = token_stats(model, ids.to(device), mask.to(device), labels.to(device), chunk_size)
            for b, e in enumerate(batch):
                n = int(cnt[b].item())
                results[(e.row, e.condition)] = {
                    "row": e.row,
                    "condition": e.condition,
                    "num_tokens": n,
                    "sequence_length": len(e.input_ids),
                    "entropy": ent[b].item() / n if n else math.nan,
                    "nll": nll[b].item() / n if n else math.nan,
                }
    return [results[(e.row, e.condition)] for e in examples]


# --------------------------------------------------------------------------------------------------
# Statistics


def _bootstrap_ci(values: Any, idx: Any) -> tuple[float, float]:
    """The 95% bootstrap interval of the mean over the shared resamples ``idx`` (NaN below two rows)."""
    if len(values) < 2:
        return math.nan, math.nan
    return bootstrap_interval(values, idx)


def summarize(
    records: Sequence[dict[str, Any]], num_bootstrap: int = 2000, seed: int = 42
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-condition means and paired differences, by verdict group (``all`` plus each verdict present).

    ``records`` are per-(row, condition) with ``row``, ``verdict``, ``condition``, ``num_tokens``,
    ``entropy``, ``nll``. A row's value is its token mean; a condition's value is the mean over rows;
    intervals are 95% percentile bootstraps over rows (the same resamples for every condition, so the
    differences are paired). ``*_token_mean`` is the token-weighted mean (no interval).
    """
    import numpy as np

    by_row: dict[int, dict[str, dict[str, Any]]] = {}
    for r in records:
        by_row.setdefault(r["row"], {})[r["condition"]] = r
    rows = sorted(by_row)
    verdicts = {r: next(iter(by_row[r].values())).get("verdict") or "unknown" for r in rows}
    present = sorted(set(verdicts.values()), key=lambda v: (v not in schema.VERDICTS, v))
    groups = ["all"] + (present if len(present) > 1 else [])  # one verdict only: its group would repeat "all"
    rng = np.random.default_rng(seed)
    summary: list[dict[str, Any]] = []
    diffs: list[dict[str, Any]] = []
    for group in groups:
        members = [r for r in rows if group == "all" or verdicts[r] == group]
        n = len(members)
        idx = rng.integers(0, n, size=(num_bootstrap, n)) if n else None
        table = {
            (c.name, m): np.array([by_row[r][c.name][m] for r in members], dtype=float)
            for c in CONDITIONS
            for m in METRICS
        }
        for c in CONDITIONS:
            out: dict[str, Any] = {
                "group": group,
                "condition": c.name,
                "label": c.label,
                "rows": n,
                "tokens": int(sum(by_row[r][c.name]["num_tokens"] for r in members)),
            }
            for m in METRICS:
                vals = table[(c.name, m)]
                low, high = _bootstrap_ci(vals, idx)
                out.update(
                    {f"{m}_mean": float(vals.mean()) if n else math.nan, f"{m}_ci_low": low, f"{m}_ci_high": high}
                )
            for m in METRICS:  # token-weighted, comparable with a trainer's loss on the same rows
                total = sum(by_row[r][c.name][m] * by_row[r][c.name]["num_tokens"] for r in members)
                out[f"{m}_token_mean"] = total / out["tokens"] if out["tokens"] else math.nan
            summary.append(out)
        for a, b in PAIRS:
            for m in METRICS:
                d = table[(a, m)] - table[(b, m)]
                low, high = _bootstrap_ci(d, idx)
                diffs.append(
                    {
                        "group": group,
                        "metric": m,
                        "comparison": f"{CONDITION_BY_NAME[a].label} − {CONDITION_BY_NAME[b].label}",
                        "a": a,
                        "b": b,
                        "rows": n,
                        "mean_diff": float(d.mean()) if n else math.nan,
                        "ci_low": low,
                        "ci_high": high,
                        "frac_rows_lower": float((d < 0).mean()) if n else math.nan,
                    }
                )
    return summary, diffs


# --------------------------------------------------------------------------------------------------
# Outputs


def _fmt(x: Any, digits: int = 3) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.{digits}f}"
    return str(x)


def markdown_tables(summary: Sequence[dict[str, Any]], diffs: Sequence[dict[str, Any]]) -> str:
    """The summary and the paired differences as Markdown tables."""
    lines = [
        "| verdict | condition | rows | tokens | entropy (nats) [95% CI] | NLL (nats) [95% CI] |",
        "|---|---|---:|---:|---|---|",
    ]
    for s in summary:
        cells = [f"{_fmt(s[f'{m}_mean'])} [{_fmt(s[f'{m}_ci_low'])}, {_fmt(s[f'{m}_ci_high'])}]" for m in METRICS]
        lines.append(f"| {s['group']} | {s['label']} | {s['rows']} | {s['tokens']} | {cells[0]} | {cells[1]} |")
    lines += [
        "",
        "| verdict | metric | difference | rows | mean [95% CI] | rows lower |",
        "|---|---|---|---:|---|---:|",
    ]
    for d in diffs:
        lines.append(
            f"| {d['group']} | {d['metric']} | {d['comparison']} | {d['rows']} | "
            f"{_fmt(d['mean_diff'])} [{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}] | {_fmt(d['frac_rows_lower'], 2)} |"
        )
    return "\n".join(lines) + "\n"


def _json_safe(obj: Any) -> Any:
    """NaN (an interval over fewer than 2 rows) as null, so the file is strict JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def _write_csv(path: Path, records: Sequence[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)


def plot(summary: Sequence[dict[str, Any]], path: Path, title: str = "") -> None:
    """Grouped bars (conditions within verdict groups) with 95% intervals, entropy and NLL side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(s["group"] for s in summary))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS) + 1, 4), squeeze=False)
    width = 0.8 / len(CONDITIONS)
    for ax, m in zip(axes[0], METRICS):
        for k, c in enumerate(CONDITIONS):
            rows = [next(s for s in summary if s["group"] == g and s["condition"] == c.name) for g in groups]
            means = [r[f"{m}_mean"] for r in rows]
            err = [
                [0.0 if math.isnan(r[f"{m}_ci_low"]) else r[f"{m}_mean"] - r[f"{m}_ci_low"] for r in rows],
                [0.0 if math.isnan(r[f"{m}_ci_high"]) else r[f"{m}_ci_high"] - r[f"{m}_mean"] for r in rows],
            ]
            xs = [g + (k - (len(CONDITIONS) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(xs, means, width, yerr=err, capsize=3, label=c.label)
        ax.set_xticks(range(len(groups)), [f"{g} (n={rows[k]['rows']})" for k, g in enumerate(groups)])
        ax.set_ylabel(f"mean token {'entropy' if m == 'entropy' else 'NLL'} of ŷ (nats)")
        ax.set_title({"entropy": "token entropy H", "nll": "negative log-likelihood"}[m])
    # One legend under the panels: inside an axis it covers the bars.
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(CONDITIONS), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(
    output_dir: str | Path,
    records: Sequence[dict[str, Any]],
    summary: Sequence[dict[str, Any]],
    diffs: Sequence[dict[str, Any]],
    meta: dict[str, Any],
) -> dict[str, Path]:
    """Write rows/summary/differences CSVs, a JSON, a Markdown report and the PNG plot."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "rows_csv": out / "entropy_rows.csv",
        "summary_csv": out / "entropy_summary.csv",
        "differences_csv": out / "entropy_differences.csv",
        "json": out / "entropy_summary.json",
        "markdown": out / "entropy_summary.md",
        "plot": out / "entropy.png",
    }
    _write_csv(paths["rows_csv"], records)
    _write_csv(paths["summary_csv"], summary)
    _write_csv(paths["differences_csv"], diffs)
    payload = _json_safe({"meta": meta, "summary": list(summary), "differences": list(diffs)})
    paths["json"].write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    header = [
        f"# Refinement uncertainty: {meta.get('model')} on {meta.get('dataset')}",
        "",
        f"{meta.get('rows')} rows, {meta.get('seconds_per_row', math.nan):.3f} s/row (4 conditions), dtype "
        f"{meta.get('dtype')}, seed {meta.get('seed')}. Per-row token means, then the mean over rows; "
        "95% percentile-bootstrap CIs over rows (paired for differences; negative = lower uncertainty).",
        "",
    ]
    paths["markdown"].write_text("\n".join(header) + "\n" + markdown_tables(summary, diffs), encoding="utf-8")
    plot(summary, paths["plot"], title=f"{meta.get('model')} — {meta.get('dataset')} ({meta.get('rows')} rows)")
    return paths


# --------------------------------------------------------------------------------------------------
# Entry point


def run(args: EntropyArguments) -> dict[str, Any]:
    """Load, encode, score (split over processes under accelerate), summarize and write; returns the JSON payload."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import gather_object
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cgd.data import load_triplets, validate_triplets

    state = PartialState()
    ds = load_triplets(args.dataset, split=args.dataset_split, data_files=args.data_files)
    ds, _ = validate_triplets(ds, "cgd", drop_invalid=True)  # needs x, y', c and ŷ; logs what it drops
    if args.num_rows is not None:
        ds = ds.select(range(min(args.num_rows, len(ds))))
    rows = list(ds)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    examples, kept = build_examples(
        tokenizer, rows, args.templates(), args.seed, args.max_length, args.truncation_marker
    )
    if len(kept) < len(rows):
        logger.warning(
            "Dropped %d rows whose target cannot fit max_length=%s.", len(rows) - len(kept), args.max_length
        )
    if not kept:
        raise ValueError("No rows left to score.")

    on_gpu = state.device.type != "cpu"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(
        args.dtype, torch.bfloat16 if on_gpu else torch.float32
    )
    model_kwargs: dict[str, Any] = {"dtype": dtype}
    if args.attn_implementation:
        model_kwargs["attn_implementation"] = args.attn_implementation
    model = AutoModelForCausalLM.from_pretrained(args.model, **model_kwargs).to(state.device).eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)

    start = time.perf_counter()
    with state.split_between_processes(examples) as mine:
        local = score_examples(
            model,
            mine,
            args.batch_size,
            args.logit_chunk_size,
            pad,
            progress=state.is_main_process and not args.no_progress,
        )
    records = gather_object(local) if state.num_processes > 1 else local
    elapsed = time.perf_counter() - start
    if not state.is_main_process:
        return {}

    for r in records:
        row = rows[r["row"]]
        r["id"] = row.get(schema.ID)
        r["verdict"] = row.get(schema.VERDICT)
        r["label"] = CONDITION_BY_NAME[r["condition"]].label
    records = sorted(records, key=lambda r: (r["row"], [c.name for c in CONDITIONS].index(r["condition"])))
    summary, diffs = summarize(records, args.num_bootstrap, args.seed)
    meta = {
        "model": args.model,
        "dataset": args.dataset,
        "rows": len(kept),
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(state.device),
        "num_processes": state.num_processes,
        "seed": args.seed,
        "seconds": round(elapsed, 3),
        "seconds_per_row": elapsed / len(kept),
        "ci": "95% percentile bootstrap over rows (per-row token means, then mean over rows; paired differences)",
        "scored_tokens": "completion tokens as in training: refined answer + end-of-turn token",
        "args": asdict(args),
    }
    paths = write_outputs(args.output_dir, records, summary, diffs, meta)
    print(markdown_tables(summary, diffs))
    print(
        f"{len(kept)} rows in {elapsed:.1f}s ({elapsed / len(kept):.3f} s/row); wrote {', '.join(str(p) for p in paths.values())}"
    )
    return {"meta": meta, "summary": summary, "differences": diffs}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from cgd.cli import StrictParser

    (args,) = StrictParser((EntropyArguments,), prog="python -m cgd.analysis.entropy").parse_args_and_config(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)


def cli() -> None:
    """Console entry point (``cgd-entropy``): exits 0 on success (``main`` returns its results to callers)."""
    main()


if __name__ == "__main__":
    main()
