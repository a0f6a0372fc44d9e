#!/usr/bin/env python
"""Training throughput and step time: plain TRL ``SFTTrainer`` vs the CGD path, on the same rows, in one process.

Every set-up (``train_setups.py``) trains a freshly initialised random Llama (same seed, so the same weights) for
``--steps`` optimizer steps on the same synthetic CGD rows and is timed over the steps after ``--warmup_steps``. The
table gives real (non-pad) tokens/s, loss tokens/s, the padding fraction, MFU (6·N·real tokens/s ÷ ``--peak_tflops``),
peak memory, the ratio to the first set-up (plain TRL defaults) and two correctness columns: the loss of the set-up's
own training path on a fixed batch of rows at initialisation, and after training, each compared with plain TRL.

Step time: every ``trl_*`` set-up run beside a ``cgd_*`` one with the same settings forms a pair. For each pair the
script checks that both trainers hold the same ``input_ids``/``labels`` and reports the median wall and process-CPU
time of a step (fetch + collate + forward + backward + optimizer, between consecutive ``on_step_end``), the CGD/TRL
ratio per repeat and its median over repeats, and both trainers' first losses. Repeats run the set-ups in
alternating order (the machine may be shared); on a shared CPU, CPU time is the fairer clock.

Rows (``cgd.testing``, written for the tokenizer ``make_tiny_tokenizer`` trains on the spot, no download): triplets
of CGD-like token lengths (prompt ≈ 690, completion ≈ 440, long-tailed, capped at ``--max_length``), or with
``--triplet_repeat N`` short arithmetic triplets whose draft, critique and answer are repeated N times. They are
encoded once by :class:`cgd.collator.CGDEncoder`; plain TRL gets the encoded ids as pre-tokenized ``input_ids`` +
``completion_mask`` (so TRL builds identical labels), the CGD path gets the raw triplets and encodes them itself
through :class:`cgd.trainer.CGDTrainer`. The model keeps its full vocabulary (the LM head costs what it costs in the
real model); the rows only use the tokenizer's few hundred ids.

Examples::

    # CPU smoke run (tiny shapes): a few seconds per set-up
    python benchmarks/train_throughput.py --model_size tiny --steps 6 --warmup_steps 2
    # H100: Llama-3.2-1B shape, TRL defaults vs the CGD recipe set-ups (see benchmarks/gpu_throughput.sh)
    python benchmarks/train_throughput.py --model_size 1.2b --num_rows 2000 --steps 40 --warmup_steps 10 \\
        --setups trl_defaults,cgd_defaults,cgd_recipe,cgd_recipe_padfree
    # Collation rows/s, padding by batch size and the bf16-update check, no training (CPU, a minute)
    python benchmarks/train_throughput.py --model_size 1.2b --setups none --collator_bench --bf16_update_check
    # Step time, CGDTrainer vs SFTTrainer on identical tokens (add _padfree to both names for padding-free)
    OMP_NUM_THREADS=1 python benchmarks/train_throughput.py --model_size 3.5m --triplet_repeat 4 --batch_size 8 \\
        --lr 1e-4 --steps 12 --warmup_steps 2 --repeats 5 --setups trl_nockpt,cgd_nockpt
    # What each option buys on CPU (docs/benchmarks.md has the exact commands and tables)
    python benchmarks/train_throughput.py --model_size small --repeats 3 \\
        --setups trl_defaults,cgd_defaults,cgd_grouped,cgd_padfree_sdpa,cgd_padfree,cgd_recipe,cgd_recipe_padfree
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.util
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from train_setups import (  # noqa: E402  (a sibling module: the script's folder is on sys.path)
    LENGTH_SCALE,
    MODEL_SHAPES,
    Setup,
    build_model,
    make_rows,
    make_setups,
    restore_module,
)
from transformers import PrinterCallback  # noqa: E402

from cgd.attention import register_varlen_attention  # noqa: E402

GiB = 1024**3


# --------------------------------------------------------------------------------------------------
# Measuring one run
# --------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    setup: str
    seconds: float
    steps_timed: int
    real_tokens: int
    loss_tokens: int
    slot_tokens: int
    rows: int
    peak_mem_gib: float
    init_loss: float
    final_loss: float
    data_ms: float = float("nan")  # sampler + dataset fetch + collate (+ device copy) per batch, timed apart
    train_losses: list[float] = field(default_factory=list)
    step_wall: list[float] = field(default_factory=list)  # seconds per optimizer step, every step
    step_cpu: list[float] = field(default_factory=list)  # process CPU seconds per step (all threads)
    tokens_digest: str = ""  # of the input_ids and labels the trainer's dataset holds
    error: str | None = None

    @classmethod
    def failed(cls, setup: str, error: str) -> RunResult:
        nan = float("nan")
        return cls(setup, 0.0, 0, 0, 0, 0, 0, 0.0, nan, nan, error=error)

    @property
    def real_tps(self) -> float:
        return self.real_tokens / self.seconds if self.seconds else float("nan")

    @property
    def loss_tps(self) -> float:
        return self.loss_tokens / self.seconds if self.seconds else float("nan")

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")

    @property
    def pad_fraction(self) -> float:
        return 1 - self.real_tokens / self.slot_tokens if self.slot_tokens else float("nan")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rss_gib() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / GiB
    except ImportError:  # pragma: no cover
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _batch_counts(inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(real tokens, loss tokens, slots, rows) of one collated batch; counts stay on device (no sync)."""
    ids = inputs["input_ids"]
    labels = inputs["labels"]
    loss = (labels[..., 1:] != -100).sum()
    if "attention_mask" in inputs:
        real = inputs["attention_mask"].sum()
        rows = ids.shape[0]
    elif "cu_seq_lens_q" in inputs:  # padding-free (no pad_to_multiple_of here): every slot is a real token
        real = torch.tensor(ids.numel(), device=ids.device)
        rows = int(inputs["cu_seq_lens_q"].numel() - 1)
    else:
        real = torch.tensor(ids.numel(), device=ids.device)
        rows = ids.shape[0]
    return real, loss, ids.numel(), rows


class _StepClock:
    """A TrainerCallback that stamps the end of every optimizer step (after a device sync), in wall and CPU time.

    On a CPU box shared with other jobs, wall time also counts the time the process waited for a core; its CPU time
    (``time.process_time``, all threads of this process) counts only the work.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stamps: list[float] = []
        self.cpu_stamps: list[float] = []
        self.rss: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        _sync(self.device)
        self.stamps, self.cpu_stamps = [time.perf_counter()], [time.process_time()]

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        _sync(self.device)
        self.stamps.append(time.perf_counter())
        self.cpu_stamps.append(time.process_time())
        if self.device.type == "cpu":
            self.rss.append(_rss_gib())

    def __getattr__(self, name: str):  # the other callback events: no-ops
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)


def _common_config(setup: Setup, args: argparse.Namespace, out_dir: str, mixed_bf16: bool) -> dict[str, Any]:
    cfg: dict[str, Any] = dict(
        output_dir=out_dir,
        max_steps=args.steps,
        per_device_train_batch_size=setup.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,  # every step on every set-up: the per-step metrics cost the same on both paths
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=args.seed,
        data_seed=args.seed,
        bf16=mixed_bf16,
        gradient_checkpointing=setup.gradient_checkpointing,
        max_length=args.max_length,
        dataloader_num_workers=0,
        use_liger_kernel=setup.liger,
        torch_compile=setup.compile,
        train_sampling_strategy="group_by_length" if setup.group_by_length else "random",
        use_cpu=not torch.cuda.is_available(),
    )
    return cfg


def _make_trainer(setup: Setup, model: torch.nn.Module, data: dict[str, Any], args, out_dir: str, mixed_bf16: bool):
    cfg = _common_config(setup, args, out_dir, mixed_bf16)
    if setup.path == "trl":
        from trl import SFTConfig, SFTTrainer

        if setup.padding_free:  # the rows are within max_length already; TRL refuses one it would not enforce
            cfg.update(padding_free=True, max_length=None)
        config = SFTConfig(**cfg, completion_only_loss=True)
        return SFTTrainer(
            model=model, args=config, train_dataset=data["trl_dataset"], processing_class=data["tokenizer"]
        )
    from cgd.config import CGDConfig
    from cgd.trainer import CGDTrainer

    config = CGDConfig(**cfg, method="cgd", padding_free=setup.padding_free)
    return CGDTrainer(model=model, args=config, train_dataset=data["raw_dataset"], processing_class=data["tokenizer"])


def _data_ms(trainer, device: torch.device, batches: int) -> float:
    """Milliseconds per batch of the trainer's own dataloader (after training, so the timed order is untouched)."""
    it = iter(trainer.get_train_dataloader())
    next(it)
    _sync(device)
    t0, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            next(it)
        except StopIteration:
            break
        n += 1
    _sync(device)
    return 1e3 * (time.perf_counter() - t0) / max(n, 1)


def _tokens_digest(dataset) -> str:
    """A digest of the ``input_ids`` and ``labels`` a trainer trains on (TRL folds ``completion_mask`` into labels)."""
    h = hashlib.sha256()
    for column in ("input_ids", "labels"):
        h.update(json.dumps(list(dataset[column])).encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def _path_loss(trainer, rows: list[dict[str, Any]]) -> float:
    """Token-mean loss of ``rows`` through the trainer's own collator and ``compute_loss`` (eval mode)."""
    model = trainer.model
    was_training = model.training
    model.eval()
    try:
        inputs = trainer._prepare_inputs(trainer.data_collator(rows))
        with trainer.compute_loss_context_manager():
            loss = trainer.compute_loss(model, inputs)
        return float(loss.detach().float().item())
    finally:
        model.train(was_training)


def run_setup(setup: Setup, data: dict[str, Any], args: argparse.Namespace, device: torch.device) -> RunResult:
    """Build a fresh model and trainer for ``setup``, train ``args.steps`` steps, measure."""
    gpu = device.type == "cuda"
    mixed_bf16 = gpu and not args.no_bf16
    gc.collect()
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    rss0 = _rss_gib()
    with restore_module("transformers.models.llama.modeling_llama"), tempfile.TemporaryDirectory() as out_dir:
        model = build_model(
            args.model_size, args.num_layers, setup.attn, device, args.seed, data["pad_id"], data["eos_id"]
        )
        if setup.bf16_weights and mixed_bf16:
            model = model.to(torch.bfloat16)
        trainer = _make_trainer(setup, model, data, args, out_dir, mixed_bf16)
        digest = _tokens_digest(trainer.train_dataset)
        init_loss = _path_loss(trainer, data["check_rows"])

        counts: list[tuple[Any, Any, int, int]] = []
        original_step = trainer.training_step

        def counting_step(model, inputs, num_items_in_batch=None):  # noqa: ANN001
            counts.append(_batch_counts(inputs))
            return original_step(model, inputs, num_items_in_batch)

        trainer.training_step = counting_step
        clock = _StepClock(device)
        trainer.add_callback(clock)
        trainer.remove_callback(PrinterCallback)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.train()
        final_loss = _path_loss(trainer, data["check_rows"])
        data_ms = _data_ms(trainer, device, args.steps)
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]

        w = args.warmup_steps
        timed = counts[w : args.steps]
        seconds = clock.stamps[args.steps] - clock.stamps[w]
        real = int(sum(int(c[0]) for c in timed))
        loss_tok = int(sum(int(c[1]) for c in timed))
        slots = int(sum(c[2] for c in timed))
        rows = int(sum(c[3] for c in timed))
        if gpu:
            peak = torch.cuda.max_memory_allocated() / GiB
        else:
            peak = max(clock.rss or [rss0])
        result = RunResult(
            setup.name, seconds, len(timed), real, loss_tok, slots, rows, peak, init_loss, final_loss, data_ms, losses,
            step_wall=[b - a for a, b in zip(clock.stamps, clock.stamps[1:])],
            step_cpu=[b - a for a, b in zip(clock.cpu_stamps, clock.cpu_stamps[1:])],
            tokens_digest=digest,
        )  # fmt: skip
        del trainer, model
    gc.collect()
    if gpu:
        torch.cuda.empty_cache()
    return result


# --------------------------------------------------------------------------------------------------
# Collator throughput (rows/s) vs what training consumes
# --------------------------------------------------------------------------------------------------


def collator_bench(data: dict[str, Any], args: argparse.Namespace, batch_size: int) -> list[tuple[str, float]]:
    """Rows/s of each per-step data path on one CPU thread (median of ``--collator_repeats``), and of the one-off encode."""
    from datasets import Dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from cgd.collator import CGDCollator, CGDEncoder, encode_dataset

    tok = data["tokenizer"]
    encoded = [dict(r) for r in data["encoded_rows"]]
    trl_rows = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in encoded]
    raw = data["raw_rows"]
    cands: dict[str, Any] = {
        "CGDCollator padded (pre-encoded rows)": (CGDCollator(pad_token_id=tok.pad_token_id), encoded),
        "CGDCollator padding-free (pre-encoded rows)": (
            CGDCollator(pad_token_id=tok.pad_token_id, padding_free=True),
            encoded,
        ),
        "TRL DataCollatorForLanguageModeling padded": (
            DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id),
            trl_rows,
        ),
        "TRL DataCollatorForLanguageModeling padding-free": (
            DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=True),
            trl_rows,
        ),
    }
    results = []
    n = len(encoded) - len(encoded) % batch_size
    for name, (collate, rows) in cands.items():
        rates = []
        for _ in range(args.collator_repeats):
            t0 = time.perf_counter()
            for i in range(0, n, batch_size):
                collate(rows[i : i + batch_size])
            rates.append(n / (time.perf_counter() - t0))
        results.append((name, statistics.median(rates)))
    rates = []
    for _ in range(args.collator_repeats):
        ds = Dataset.from_list(raw)  # in memory: nothing is cached between repeats
        t0 = time.perf_counter()
        encode_dataset(ds, CGDEncoder(tok, "cgd", args.max_length))
        rates.append(len(raw) / (time.perf_counter() - t0))
    results.append(("encode_dataset (one-off cached map, 1 process)", statistics.median(rates)))
    return results


def bf16_update_check(lrs: tuple[float, ...] = (1e-6, 1e-5, 1e-4), steps: int = 5) -> str:
    """How many weights AdamW actually changes when they are stored in bf16 rather than fp32 (1.2B shape's width).

    A bf16 weight of magnitude ~0.02 has a spacing of ~1.2e-4, so a plain AdamW update of ~lr is rounded away when
    lr is well below that: pure-bf16 training at the paper's lr 1e-6 does not train. Runs on CPU in seconds.
    """
    lines = [
        f"| weights | lr | weights changed after {steps} AdamW steps | loss change |",
        "| --- | --- | --- | --- |",
    ]
    for dtype in (torch.float32, torch.bfloat16):
        for lr in lrs:
            torch.manual_seed(0)
            layer = torch.nn.Linear(2048, 2048, bias=False)
            torch.nn.init.normal_(layer.weight, std=0.02)
            layer = layer.to(dtype)
            x, y = torch.randn(64, 2048, dtype=dtype), torch.randn(64, 2048, dtype=dtype)
            w0 = layer.weight.detach().clone()
            opt = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=0.0)
            losses = []
            for _ in range(steps):
                loss = (layer(x) - y).float().square().mean()
                losses.append(loss.item())
                loss.backward()
                opt.step()
                opt.zero_grad()
            changed = (layer.weight != w0).float().mean().item()
            final = (layer(x) - y).float().square().mean().item()
            name = "fp32" if dtype == torch.float32 else "bf16"
            lines.append(f"| {name} | {lr:g} | {100 * changed:.1f}% | {final - losses[0]:+.2e} |")
    return "\n".join(lines)


def padding_table(lengths: list[int], batch_sizes: tuple[int, ...] = (1, 4, 8, 16), seed: int = 0) -> str:
    """Padding fraction of one epoch of padded batches, random order vs transformers' length-grouped sampler.

    Uses the trainers' own samplers over the encoded row lengths: exact, and instant at any scale.
    """
    from transformers.trainer_pt_utils import LengthGroupedSampler

    lines = [
        "| batch | random order: pad % | length-grouped: pad % | padding-free: pad % |",
        "| --- | --- | --- | --- |",
    ]
    for b in batch_sizes:
        fractions = []
        for grouped in (False, True):
            g = torch.Generator().manual_seed(seed)
            if grouped:
                order = list(LengthGroupedSampler(b, lengths=lengths, generator=g))
            else:
                order = torch.randperm(len(lengths), generator=g).tolist()
            real = slots = 0
            for i in range(0, len(order) - b + 1, b):
                batch = [lengths[j] for j in order[i : i + b]]
                real, slots = real + sum(batch), slots + max(batch) * b
            fractions.append(1 - real / slots)
        lines.append(f"| {b} | {100 * fractions[0]:.1f} | {100 * fractions[1]:.1f} | 0.0 |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def _fmt(x: float, spec: str = ",.0f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def make_table(
    results: dict[str, list[RunResult]], setups: list[Setup], n_params: int, peak_tflops: float | None, gpu: bool
) -> str:
    """Markdown table of the medians per set-up; the first set-up is the reference of the ratio and loss columns."""
    med: dict[str, dict[str, float]] = {}
    for s in setups:
        runs = [r for r in results.get(s.name, []) if r.error is None]
        if not runs:
            continue
        med[s.name] = {
            "real": statistics.median(r.real_tps for r in runs),
            "loss": statistics.median(r.loss_tps for r in runs),
            "rows": statistics.median(r.rows_per_s for r in runs),
            "pad": statistics.median(r.pad_fraction for r in runs),
            "mem": max(r.peak_mem_gib for r in runs),
            "init": runs[0].init_loss,
            "final": statistics.median(r.final_loss for r in runs),
            "n": len(runs),
            "step_ms": statistics.median(1e3 * r.seconds / r.steps_timed for r in runs),
            "data_ms": statistics.median(r.data_ms for r in runs),
        }
    ref = med.get(setups[0].name) if setups else None
    mem_label = "peak GiB (cuda alloc)" if gpu else "peak RSS GiB (process)"
    head = (
        f"| set-up | path | batch | real tok/s | loss tok/s | rows/s | pad % | MFU | {mem_label} | step ms | data ms "
        "| × ref "
        "| loss@init (Δ vs ref) | loss after | drop vs same-batch ref | runs |"
    )
    lines = [head, "|" + " --- |" * 16]
    for s in setups:
        if s.name not in med:
            err = next((r.error for r in results.get(s.name, []) if r.error), "not run")
            lines.append(f"| {s.name} | {s.path} | {s.batch_size} | failed: {err} |" + " |" * 12)
            continue
        m = med[s.name]
        mfu = 6 * n_params * m["real"] / (peak_tflops * 1e12) if peak_tflops else float("nan")
        ratio = m["real"] / ref["real"] if ref else float("nan")
        d_init = (m["init"] - ref["init"]) / ref["init"] if ref else float("nan")
        # Loss after training is compared only between set-ups that take the same batches (same batch size).
        same = med[next(x.name for x in setups if x.name in med and x.batch_size == s.batch_size)]
        ref_drop = same["init"] - same["final"]
        drop = (m["init"] - m["final"]) / ref_drop if ref_drop else float("nan")
        lines.append(
            f"| {s.name} | {s.path} | {s.batch_size} | {_fmt(m['real'])} | {_fmt(m['loss'])} | {_fmt(m['rows'], '.2f')} "
            f"| {_fmt(100 * m['pad'], '.1f')} | {_fmt(100 * mfu, '.1f') + '%' if peak_tflops else 'n/a'} "
            f"| {_fmt(m['mem'], '.2f')} | {_fmt(m['step_ms'], '.0f')} | {_fmt(m['data_ms'], '.1f')} | {_fmt(ratio, '.2f')} | {m['init']:.4f} ({100 * d_init:+.2f}%) "
            f"| {m['final']:.4f} | {_fmt(100 * drop, '.0f')}% | {m['n']} |"
        )
    legend = [
        "",
        "Columns: real tok/s = non-pad tokens per second over the timed steps (data loading and optimizer "
        "included); loss tok/s = tokens that carry loss; pad % = padding slots ÷ all slots; MFU = 6·N·real tok/s ÷ "
        "peak; step ms = wall time per timed step; data ms = the trainer's dataloader alone per batch (sampler, fetch, "
        "collate, device copy), timed after training; × ref = real tok/s ÷ the first set-up's; loss@init = the set-up's own collator + loss on the same "
        "--check_rows rows at initialisation; drop vs same-batch ref = (loss@init − loss after training) ÷ the same for the first "
        "set-up with this batch size (100% = trains like it).",
        "",
        "Set-ups:",
    ] + [
        f"- `{s.name}`: {s.note}; batch {s.batch_size}, grad ckpt {'on' if s.gradient_checkpointing else 'off'}, "
        f"{'bf16' if s.bf16_weights and gpu else 'fp32'} weights, attn {s.attn}"
        + (", liger" if s.liger else "")
        + (", length-grouped" if s.group_by_length else "")
        + (", padding-free" if s.padding_free else "")
        + (", torch.compile" if s.compile else "")
        for s in setups
    ]
    return "\n".join(lines + legend)


def step_time_table(
    results: dict[str, list[RunResult]], setups: list[Setup], warmup_steps: int
) -> tuple[str, list[dict[str, Any]]]:
    """CGD vs TRL step time for every pair of set-ups with the same settings: medians per clock, paired ratios.

    A run's step time is the median of its steps after ``warmup_steps``; a pair's ratio is the median over repeats
    of each repeat's CGD/TRL ratio. Also says whether both trained on the same tokens, and their first losses.
    """
    pairs = [
        (t, c) for c in setups if c.path == "cgd" for t in setups if t.path == "trl" and t.settings() == c.settings()
    ]
    lines, summary = [], []
    for trl, cgd in pairs:
        runs = list(zip(results.get(trl.name, []), results.get(cgd.name, [])))
        runs = [(t, c) for t, c in runs if t.error is None and c.error is None]
        if not runs:
            continue
        same = all(t.tokens_digest == c.tokens_digest for t, c in runs)
        first = {name: [round(x, 4) for x in r.train_losses[:3]] for name, r in zip((trl.name, cgd.name), runs[0])}
        lines += [
            "",
            f"Step time, `{cgd.name}` vs `{trl.name}` ({len(runs)} paired repeats, {warmup_steps} warm-up steps "
            f"dropped). Same input_ids/labels in both: {'yes' if same else 'NO'}. First losses: "
            + ", ".join(f"{k} {v}" for k, v in first.items()),
            "",
            "| clock | plain TRL `SFTTrainer` (ms/step) | `CGDTrainer` (ms/step) | CGD / TRL, median of paired repeats "
            "| per-repeat ratios |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        row = {"trl": trl.name, "cgd": cgd.name, "same_tokens": same, "first_losses": first}
        for clock, attr in (("CPU time", "step_cpu"), ("wall time", "step_wall")):
            ms = {side: [1e3 * statistics.median(getattr(r, attr)[warmup_steps:]) for r in side_runs]
                  for side, side_runs in (("trl", [t for t, _ in runs]), ("cgd", [c for _, c in runs]))}  # fmt: skip
            ratios = [c / t for t, c in zip(ms["trl"], ms["cgd"])]
            row[clock] = {"trl_ms": statistics.median(ms["trl"]), "cgd_ms": statistics.median(ms["cgd"]),
                          "ratio": statistics.median(ratios), "ratios": ratios}  # fmt: skip
            lines.append(
                f"| {clock} | {row[clock]['trl_ms']:,.1f} | {row[clock]['cgd_ms']:,.1f} | {row[clock]['ratio']:.3f} "
                f"| {', '.join(f'{r:.3f}' for r in ratios)} |"
            )
        lines.append(
            f"\nCGD overhead: {(row['CPU time']['ratio'] - 1) * 100:+.1f}% CPU time, "
            f"{(row['wall time']['ratio'] - 1) * 100:+.1f}% wall time (target: <= +3%)"
        )
        summary.append(row)
    return "\n".join(lines), summary


def _quiet() -> None:
    """Keep the output to the table: no progress bars, no per-run training logs or encoding summaries."""
    import logging

    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    logging.getLogger("cgd").setLevel(logging.ERROR)


def environment() -> dict[str, str]:
    import platform

    import datasets
    import transformers
    import trl

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "datasets": datasets.__version__,
        "cpu_threads": str(torch.get_num_threads()),
        "os_cpus": str(os.cpu_count()),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    for pkg in ("liger_kernel", "flash_attn", "kernels"):
        env[pkg] = "yes" if importlib.util.find_spec(pkg) else "no"
    return env


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def _write(
    args: argparse.Namespace, table: str, results: dict[str, list[RunResult]], extra: dict | None = None
) -> None:
    path = Path(args.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / "table.md").write_text(table + "\n")
    (path / "results.json").write_text(
        json.dumps({"args": vars(args), "results": _raw(results), **(extra or {})}, indent=2, default=str)
    )


def _raw(results: dict[str, list[RunResult]]) -> dict[str, list[dict[str, Any]]]:
    return {
        k: [asdict(r) | {"real_tps": r.real_tps, "pad_fraction": r.pad_fraction} for r in v]
        for k, v in results.items()
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model_size", choices=list(MODEL_SHAPES), default="tiny")
    p.add_argument("--num_layers", type=int, default=None, help="override the shape's layer count (e.g. 8b at 4)")
    p.add_argument("--num_rows", type=int, default=None, help="rows to train on (default 2000; tiny/3.5m/small 256)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per set-up (default 40; CPU 6)")
    p.add_argument("--warmup_steps", type=int, default=None, help="untimed first steps (default 10; CPU 2)")
    p.add_argument("--repeats", type=int, default=1, help="runs per set-up, interleaved; medians are reported")
    p.add_argument("--setups", default="trl_defaults,cgd_defaults,cgd_grouped,cgd_padfree,cgd_recipe")
    p.add_argument("--batch_size", type=int, default=None, help="batch of the default-settings set-ups")
    p.add_argument("--fast_batch_size", type=int, default=None, help="batch of the fast/recipe set-ups")
    p.add_argument("--max_length", type=int, default=None, help="default 2048 (tiny: 2048 × 0.2)")
    p.add_argument("--prompt_mean", type=float, default=690.0)
    p.add_argument("--completion_mean", type=float, default=440.0)
    p.add_argument("--length_sigma", type=float, default=0.7, help="log-normal spread of the row lengths")
    p.add_argument("--length_scale", type=float, default=None, help="scale row lengths (default: tiny 0.2, else 1)")
    p.add_argument(
        "--triplet_repeat",
        type=int,
        default=None,
        help="train on cgd.testing's arithmetic triplets, draft/critique/answer repeated this many times",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="same for every set-up (default 1e-5; tiny/3.5m/small 1e-3 so the loss moves)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--peak_tflops", type=float, default=None, help="MFU denominator (default 989 on H100, none on CPU)"
    )
    p.add_argument("--no_bf16", action="store_true", help="fp32 everywhere, even on GPU")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--collator_bench", action="store_true", help="also time the collators (rows/s) on CPU")
    p.add_argument("--collator_batch_size", type=int, default=8, help="batch of the collator timing")
    p.add_argument("--collator_repeats", type=int, default=3, help="repeats of the collator timing (median)")
    p.add_argument("--check_rows", type=int, default=8, help="rows of the loss@init / loss-after check batch")
    p.add_argument("--bf16_update_check", action="store_true", help="also show what bf16 weights do to AdamW updates")
    p.add_argument("--output_dir", default=None, help="write table.md and results.json here")
    args = p.parse_args(argv)
    gpu = torch.cuda.is_available()
    args.num_rows = args.num_rows or (256 if args.model_size in ("tiny", "3.5m", "small") else 2000)
    args.steps = args.steps or (40 if gpu else 6)
    args.warmup_steps = args.warmup_steps if args.warmup_steps is not None else (10 if gpu else 2)
    if args.warmup_steps >= args.steps:
        p.error("--warmup_steps must be below --steps")
    args.length_scale = args.length_scale or LENGTH_SCALE[args.model_size]
    args.lr = args.lr or (1e-3 if args.model_size in ("tiny", "3.5m", "small") else 1e-5)
    args.max_length = args.max_length or int(2048 * args.length_scale)
    if args.peak_tflops is None and gpu and "H100" in torch.cuda.get_device_name(0):
        args.peak_tflops = 989.0
    return args


def prepare_data(args: argparse.Namespace) -> dict[str, Any]:
    """Tokenizer, raw triplets, their CGD encoding, and the same encoding as TRL pre-tokenized rows."""
    from datasets import Dataset

    from cgd.collator import CGDEncoder, encode_dataset
    from cgd.testing import make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    raw_rows = make_rows(tokenizer, args)
    raw = Dataset.from_list(raw_rows)
    encoded, report = encode_dataset(raw, CGDEncoder(tokenizer, "cgd", args.max_length))
    enc_rows = encoded.to_list()
    trl_ds = Dataset.from_dict(
        {
            "input_ids": [r["input_ids"] for r in enc_rows],
            "completion_mask": [[int(x != -100) for x in r["labels"]] for r in enc_rows],
        }
    )
    # The loss check batch: the same pre-encoded rows through each path's own collator and loss.
    check = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in enc_rows[: args.check_rows]]
    prompt_lens = [sum(1 for x in r["labels"] if x == -100) for r in enc_rows]
    comp_lens = [sum(1 for x in r["labels"] if x != -100) for r in enc_rows]
    stats = {
        "rows": len(enc_rows),
        "prompt_mean": statistics.mean(prompt_lens),
        "completion_mean": statistics.mean(comp_lens),
        "length_mean": statistics.mean(r["length"] for r in enc_rows),
        "length_max": max(r["length"] for r in enc_rows),
        "encoding": report.summary(),
    }
    return dict(
        tokenizer=tokenizer,
        raw_rows=raw_rows,
        raw_dataset=raw,
        encoded_rows=enc_rows,
        trl_dataset=trl_ds,
        check_rows=check,
        pad_id=tokenizer.pad_token_id,
        eos_id=tokenizer.eos_token_id,
        stats=stats,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    register_varlen_attention()
    _quiet()
    t0 = time.perf_counter()
    data = prepare_data(args)
    env = environment()
    print(f"# Training throughput ({args.model_size}{f', {args.num_layers} layers' if args.num_layers else ''})")
    print("environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    s = data["stats"]
    print(
        f"rows: {s['rows']} (prompt {s['prompt_mean']:.0f} + completion {s['completion_mean']:.0f} tokens on average, "
        f"max {s['length_max']}, max_length {args.max_length}); {s['encoding']} prepared in {time.perf_counter() - t0:.1f}s"
    )
    setups, notes = make_setups(args, device, gpu)
    for n in notes:
        print("note: " + n)
    probe = build_model(args.model_size, args.num_layers, "sdpa", torch.device("meta"), 0, 0, 1)
    n_params = sum(p.numel() for p in probe.parameters())
    del probe
    print(
        f"model: {n_params / 1e6:.1f}M parameters; steps {args.steps} ({args.steps - args.warmup_steps} timed after "
        f"{args.warmup_steps}); repeats {args.repeats}; lr {args.lr}"
    )
    sys.stdout.flush()

    results: dict[str, list[RunResult]] = {s.name: [] for s in setups}
    for rep in range(args.repeats):
        for setup in setups if rep % 2 == 0 else setups[::-1]:  # alternate the order: the machine may be shared
            t = time.perf_counter()
            try:
                r = run_setup(setup, data, args, device)
            except Exception as exc:  # noqa: BLE001 - one failing set-up must not sink the table
                r = RunResult.failed(setup.name, f"{type(exc).__name__}: {exc}"[:300])
                if gpu:
                    torch.cuda.empty_cache()
            results[setup.name].append(r)
            msg = r.error or (
                f"{r.real_tps:,.0f} real tok/s, pad {100 * r.pad_fraction:.1f}%, loss {r.init_loss:.4f} -> {r.final_loss:.4f}"
            )
            print(f"  [{rep + 1}/{args.repeats}] {setup.name}: {msg} ({time.perf_counter() - t:.1f}s)")
            sys.stdout.flush()
            if args.output_dir:  # after every run, so a run cut short by a time limit still leaves its numbers
                _write(args, make_table(results, setups, n_params, args.peak_tflops, gpu), results)

    table = make_table(results, setups, n_params, args.peak_tflops, gpu)
    print()
    print(table)
    out: dict[str, Any] = {
        "args": vars(args),
        "environment": env,
        "data": s,
        "notes": notes,
        "n_params": n_params,
        "setups": [asdict(x) for x in setups],
        "results": _raw(results),
        "table": table,
    }
    steps_text, out["step_time"] = step_time_table(results, setups, args.warmup_steps)
    if steps_text:
        print(steps_text)
        out["table"] += "\n" + steps_text
    if args.collator_bench:
        batch = args.collator_batch_size
        rates = collator_bench(data, args, batch)
        train_rates = {
            k: statistics.median(r.rows_per_s for r in v if r.error is None)
            for k, v in results.items()
            if any(r.error is None for r in v)
        }
        fastest_consumer = max(train_rates.values()) if train_rates else float("nan")
        lines = [
            "",
            f"Collation on one CPU thread, batch {batch} (median of {args.collator_repeats}); training consumed at most "
            f"{fastest_consumer:.2f} rows/s in this run.",
            "",
            "| data path | rows/s | × fastest training set-up |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {n} | {r:,.0f} | {_fmt(r / fastest_consumer, ',.0f')}× |" for n, r in rates]
        print("\n".join(lines))
        out["collator"] = {"rates": rates, "training_rows_per_s": train_rates}
        out["table"] += "\n" + "\n".join(lines)
    if args.collator_bench:
        pads = padding_table([r["length"] for r in data["encoded_rows"]])
        print(f"\nPadding of {len(data['encoded_rows'])} rows by batch size (one epoch):\n{pads}")
        out["table"] += f"\n\nPadding of {len(data['encoded_rows'])} rows by batch size (one epoch):\n\n{pads}"
    if args.bf16_update_check:
        check = bf16_update_check()
        print("\nbf16 weights vs AdamW updates (one 2048x2048 layer, init std 0.02):\n" + check)
        out["table"] += "\n\nbf16 weights vs AdamW updates (one 2048x2048 layer, init std 0.02):\n\n" + check
    if args.output_dir:
        _write(args, out["table"], results, {k: v for k, v in out.items() if k not in ("args", "results", "table")})
    return out


if __name__ == "__main__":
    main()
