#!/usr/bin/env python
"""Training throughput: plain TRL ``SFTTrainer`` defaults vs the CGD path, on the same rows, in one process.

Every set-up trains a freshly initialised random Llama (same seed, so the same weights) for ``--steps`` optimizer
steps on the same synthetic CGD rows and is timed over the steps after ``--warmup_steps``. The table gives real
(non-pad) tokens/s, loss tokens/s, the padding fraction, MFU (6·N·real tokens/s ÷ ``--peak_tflops``), peak memory,
the ratio to the first set-up (plain TRL defaults) and two correctness columns: the loss of the set-up's own
training path on a fixed batch of rows at initialisation, and after training, each compared with plain TRL.

Rows: text triplets of CGD-like token lengths (prompt ≈ 690 tokens, completion ≈ 440, long-tailed, capped at
``--max_length``) written with the tokenizer that ``cgd.testing.make_tiny_tokenizer`` trains on the spot (no
download). They are encoded once by :class:`cgd.collator.CGDEncoder`; plain TRL gets the encoded ids as pre-tokenized
``input_ids`` + ``completion_mask`` (so TRL builds identical labels), the CGD path gets the raw triplets and encodes
them itself through :class:`cgd.trainer.CGDTrainer`. The model keeps its full vocabulary (the LM head costs what it
costs in the real model); the rows only use the tokenizer's few hundred ids.

Examples::

    # CPU smoke run (tiny shapes): a few seconds per set-up
    python benchmarks/train_throughput.py --model_size tiny --steps 6 --warmup_steps 2
    # H100: Llama-3.2-1B shape, TRL defaults vs the CGD recipe set-ups (see benchmarks/gpu_throughput.sh)
    python benchmarks/train_throughput.py --model_size 1.2b --num_rows 2000 --steps 40 --warmup_steps 10 \\
        --setups trl_defaults,cgd_defaults,cgd_recipe,cgd_recipe_padfree
    # Collation rows/s, padding by batch size and the bf16-update check, no training (CPU, a minute)
    python benchmarks/train_throughput.py --model_size 1.2b --setups none --collator_bench --bf16_update_check
    # What each option buys on CPU (docs/benchmarks.md has the exact commands and tables)
    python benchmarks/train_throughput.py --model_size small --repeats 3 \
        --setups trl_defaults,cgd_defaults,cgd_grouped,cgd_padfree_sdpa,cgd_padfree,cgd_recipe,cgd_recipe_padfree
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Runnable as `python benchmarks/train_throughput.py` from a checkout without installing the package.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from transformers import PrinterCallback  # noqa: E402

import cgd.attention as cgd_attention  # noqa: E402
from cgd.attention import (  # noqa: E402
    VARLEN_ATTENTION,
    check_varlen_attention,
    register_varlen_attention,
    varlen_kernel,
)
from cgd.testing import WORDS  # noqa: E402

GiB = 1024**3

# --------------------------------------------------------------------------------------------------
# Model shapes (random init from config, nothing downloaded)
# --------------------------------------------------------------------------------------------------

MODEL_SHAPES: dict[str, dict[str, Any]] = {
    # Small enough for CPU tests: 2 layers, GQA, tied embeddings.
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=1024,
        tie_word_embeddings=True,
    ),
    # A CPU study shape: big enough that matmuls, not Python, dominate a step; seconds per step on 2 cores.
    "small": dict(
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=8192,
        tie_word_embeddings=True,
    ),
    # SmolLM2-135M.
    "135m": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        vocab_size=49152,
        tie_word_embeddings=True,
        rope_theta=100000.0,
    ),
    # Llama-3.2-1B (1.24B parameters).
    "1.2b": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        vocab_size=128256,
        tie_word_embeddings=True,
        rope_theta=500000.0,
    ),
    # Llama-3.1-8B; use --num_layers to fit one GPU.
    "8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=128256,
        tie_word_embeddings=False,
        rope_theta=500000.0,
    ),
}

#: Per-device batch of the TRL-defaults baseline per shape (issue 7's measurements), and of the fast set-ups.
DEFAULT_BATCH = {"tiny": 4, "small": 4, "135m": 8, "1.2b": 4, "8b": 2}
FAST_BATCH = {"tiny": 8, "small": 8, "135m": 16, "1.2b": 8, "8b": 4}

#: Row lengths as a fraction of the real ones (prompt ≈ 690, completion ≈ 440, max 2048): tiny keeps CPU tests fast.
LENGTH_SCALE = {"tiny": 0.2, "small": 0.5, "135m": 1.0, "1.2b": 1.0, "8b": 1.0}


def build_model(
    size: str, num_layers: int | None, attn: str, device: torch.device, seed: int, pad_id: int, eos_id: int
) -> torch.nn.Module:
    """A random-init ``LlamaForCausalLM`` of shape ``size`` on ``device`` (same ``seed`` -> same weights)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = dict(MODEL_SHAPES[size])
    if num_layers:
        shape["num_hidden_layers"] = num_layers
    config = LlamaConfig(
        **shape, max_position_embeddings=8192, pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=None
    )
    config._attn_implementation = attn
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    return model


# --------------------------------------------------------------------------------------------------
# Synthetic CGD rows
# --------------------------------------------------------------------------------------------------


def _lognormal_tokens(rng: random.Random, mean: float, sigma: float, low: int) -> int:
    mu = math.log(mean) - sigma**2 / 2  # so that the mean is `mean`
    return max(low, int(rng.lognormvariate(mu, sigma)))


def _text(rng: random.Random, num_tokens: int) -> str:
    words = []
    for i in range(max(1, num_tokens)):
        words.append(str(rng.randint(0, 999)) if rng.random() < 0.04 else rng.choice(WORDS))
        if i % 17 == 16:
            words[-1] += rng.choice([".", ",", ":", "\n"])
    return " ".join(words)


def make_cgd_rows(
    num_rows: int,
    prompt_mean: float,
    completion_mean: float,
    sigma: float = 0.7,
    seed: int = 0,
    tokens_per_word: float = 1.0,
    overhead: int = 60,
) -> list[dict[str, Any]]:
    """Triplet rows whose encoded prompt/completion lengths average ``prompt_mean``/``completion_mean`` tokens.

    Lengths are log-normal (a long tail, like real generations). The prompt's tokens past the template
    (``overhead``) are split between question (20%), initial answer (45%) and critique (35%); word counts are
    token counts divided by ``tokens_per_word``.
    """
    from cgd.testing import make_triplet_rows

    base = make_triplet_rows(1)[0]
    rng = random.Random(seed)
    rows = []
    for i in range(num_rows):
        body = _lognormal_tokens(rng, max(1.0, prompt_mean - overhead), sigma, 12) / tokens_per_word
        completion = _lognormal_tokens(rng, completion_mean, sigma, 8) / tokens_per_word
        verdict = rng.choice(["right", "wrong"])
        row = dict(base)
        row.update(
            id=f"bench-{i}",
            question=_text(rng, int(body * 0.20)),
            initial_response=_text(rng, int(body * 0.45)),
            critique=_text(rng, int(body * 0.35)) + f"\nConclusion: {verdict}",
            verdict=verdict,
            refined_response=_text(rng, int(completion) - 2),
        )
        rows.append(row)
    return rows


def calibrate_rows(tokenizer: Any, args: argparse.Namespace, scale: float) -> list[dict[str, Any]]:
    """Rows of the requested mean token lengths, with tokens per word and the template's tokens measured first."""
    from cgd.collator import CGDEncoder

    encoder = CGDEncoder(tokenizer, "cgd", None)
    sample = _text(random.Random(12345), 5000)
    tokens_per_word = len(tokenizer(sample, add_special_tokens=False)["input_ids"]) / 5000
    return make_cgd_rows(
        args.num_rows,
        args.prompt_mean * scale,
        args.completion_mean * scale,
        args.length_sigma,
        seed=args.seed,
        tokens_per_word=tokens_per_word,
        overhead=encoder.minimal_prompt_length() + 6,  # + the verdict line
    )


# --------------------------------------------------------------------------------------------------
# Set-ups
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """One training configuration. ``path`` is "trl" (plain SFTTrainer) or "cgd" (CGDTrainer + CGDCollator)."""

    name: str
    path: str
    batch_size: int
    gradient_checkpointing: bool = True
    bf16_weights: bool = False
    group_by_length: bool = False
    padding_free: bool = False
    attn: str = "sdpa"
    liger: bool = False
    compile: bool = False
    note: str = ""


def make_setups(args: argparse.Namespace, device: torch.device, gpu: bool) -> tuple[list[Setup], list[str]]:
    """The named set-ups for this run, and notes on the ones left out (kernels missing on this machine)."""
    b0 = args.batch_size or DEFAULT_BATCH[args.model_size]
    b1 = args.fast_batch_size or FAST_BATCH[args.model_size]
    liger_ok = gpu and importlib.util.find_spec("liger_kernel") is not None
    fa2_ok = gpu and importlib.util.find_spec("flash_attn") is not None
    dtype = torch.bfloat16 if gpu else torch.float32
    varlen_status = check_varlen_attention(device, dtype)
    if varlen_status != "ok" and varlen_kernel(device) != "per-sequence sdpa":
        first = f"{varlen_kernel(device)} {varlen_status}"
        cgd_attention.VARLEN_BACKEND = "sdpa_loop"  # keep cgd_varlen, on its exact per-sequence sdpa kernel
        varlen_status = f"{check_varlen_attention(device, dtype)} after {first}"
    varlen_ok = varlen_status.startswith("ok")
    varlen_kind = varlen_kernel(device)
    fast_attn = "flash_attention_2" if fa2_ok else (VARLEN_ATTENTION if varlen_ok else "sdpa")
    liger_status = _check_liger(device) if liger_ok else "not installed" if gpu else "needs CUDA"
    liger_ok = liger_status == "ok"
    # fp32 master weights + bf16 autocast: bf16-stored weights lose AdamW updates at CGD's learning rates
    # (see --bf16_update_check); cgd_recipe_bf16w measures what they would buy.
    fast = dict(batch_size=b1, gradient_checkpointing=False, liger=liger_ok, attn=fast_attn)
    catalogue = {
        "trl_defaults": Setup("trl_defaults", "trl", b0, note="SFTTrainer defaults: padded, grad ckpt, sdpa"),
        "cgd_defaults": Setup("cgd_defaults", "cgd", b0, note="CGD path, same settings as trl_defaults"),
        "cgd_grouped": Setup("cgd_grouped", "cgd", b0, group_by_length=True, note="+ length-grouped batches"),
        "cgd_padfree_sdpa": Setup(
            "cgd_padfree_sdpa", "cgd", b0, padding_free=True, note="+ padding-free, sdpa block-diagonal mask"
        ),
        "cgd_padfree": Setup(
            "cgd_padfree", "cgd", b0, padding_free=True, attn=fast_attn, note=f"+ padding-free, {varlen_kind}"
        ),
        "trl_fast": Setup("trl_fast", "trl", **fast, note="TRL with the recipe's kernel/precision/batch settings"),
        "cgd_fast": Setup("cgd_fast", "cgd", **fast, note="CGD path, same settings as trl_fast"),
        "cgd_recipe": Setup("cgd_recipe", "cgd", **fast, group_by_length=True, note="cgd_fast + length-grouped"),
        "cgd_recipe_padfree": Setup(
            "cgd_recipe_padfree", "cgd", **fast, padding_free=True, note=f"cgd_fast + padding-free ({varlen_kind})"
        ),
        "cgd_recipe_bf16w": Setup(
            "cgd_recipe_bf16w",
            "cgd",
            **fast,
            group_by_length=True,
            bf16_weights=True,
            note="cgd_recipe + bf16 weights",
        ),
        "cgd_recipe_compile": Setup(
            "cgd_recipe_compile", "cgd", **fast, group_by_length=True, compile=True, note="cgd_recipe + torch.compile"
        ),
    }
    names = [n.strip() for n in args.setups.split(",") if n.strip()]
    if names == ["all"]:
        names = list(catalogue)
    elif names == ["none"]:  # only the collator / padding / bf16 measurements
        names = []
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise SystemExit(f"unknown set-up(s) {unknown}; choose from {list(catalogue)}")
    notes = [f"varlen attention self-check on {device.type}: {varlen_status} ({varlen_kind})"]
    notes.append(f"liger_kernel: {liger_status}; flash_attn: {'yes' if fa2_ok else 'no'}")
    setups = []
    for n in names:
        s = catalogue[n]
        if s.attn == VARLEN_ATTENTION and not varlen_ok:
            notes.append(f"{n}: varlen attention failed its self-check, using sdpa")
            s = replace(s, attn="sdpa")
        setups.append(s)
    return setups, notes


def _check_liger(device: torch.device) -> str:
    """Apply liger's layer kernels to a small Llama and run a step; "ok" or why not (then the set-ups go without)."""
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        with _restore_module("transformers.models.llama.modeling_llama"):
            model = build_model("tiny", None, "sdpa", device, 0, 0, 1)
            _apply_liger_kernel_to_instance(
                model=model,
                rope=True,
                rms_norm=True,
                swiglu=True,
                cross_entropy=False,
                fused_linear_cross_entropy=False,
            )
            ids = torch.randint(3, 500, (2, 64), device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
        return "ok" if torch.isfinite(loss).item() else "non-finite loss"
    except Exception as exc:  # noqa: BLE001
        return f"failed: {type(exc).__name__}: {exc}"[:200]


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
    """A TrainerCallback that stamps the end of every optimizer step (after a device sync)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stamps: list[float] = []
        self.rss: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        _sync(self.device)
        self.stamps = [time.perf_counter()]

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        _sync(self.device)
        self.stamps.append(time.perf_counter())
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
        logging_steps=args.steps,
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


@contextlib.contextmanager
def _restore_module(module_name: str):
    """Undo global monkey-patches (liger patches transformers' Llama module functions) after a set-up."""
    import importlib

    module = importlib.import_module(module_name)
    saved = dict(vars(module))
    try:
        yield
    finally:
        for key, value in saved.items():
            if vars(module).get(key) is not value:
                setattr(module, key, value)


def run_setup(setup: Setup, data: dict[str, Any], args: argparse.Namespace, device: torch.device) -> RunResult:
    """Build a fresh model and trainer for ``setup``, train ``args.steps`` steps, measure."""
    gpu = device.type == "cuda"
    mixed_bf16 = gpu and not args.no_bf16
    gc.collect()
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    rss0 = _rss_gib()
    with _restore_module("transformers.models.llama.modeling_llama"), tempfile.TemporaryDirectory() as out_dir:
        model = build_model(
            args.model_size, args.num_layers, setup.attn, device, args.seed, data["pad_id"], data["eos_id"]
        )
        if setup.bf16_weights and mixed_bf16:
            model = model.to(torch.bfloat16)
        trainer = _make_trainer(setup, model, data, args, out_dir, mixed_bf16)
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
            setup.name, seconds, len(timed), real, loss_tok, slots, rows, peak, init_loss, final_loss, data_ms, losses
        )
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
        "CGDCollator padded (pre-encoded rows)": (CGDCollator(tok, "cgd", args.max_length), encoded),
        "CGDCollator padding-free (pre-encoded rows)": (
            CGDCollator(tok, "cgd", args.max_length, padding_free=True),
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
        "CGDCollator on raw triplets (encodes on the fly)": (CGDCollator(tok, "cgd", args.max_length), raw),
    }
    results = []
    n = len(encoded) - len(encoded) % batch_size
    for name, (collate, rows) in cands.items():
        rates = []
        for _ in range(args.collator_repeats):
            limit = min(n, 4 * batch_size * 8) if "raw" in name else n
            t0 = time.perf_counter()
            for i in range(0, limit, batch_size):
                collate(rows[i : i + batch_size])
            rates.append(limit / (time.perf_counter() - t0))
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
    raw = {
        k: [asdict(r) | {"real_tps": r.real_tps, "pad_fraction": r.pad_fraction} for r in v]
        for k, v in results.items()
    }
    (path / "results.json").write_text(
        json.dumps({"args": vars(args), "results": raw, **(extra or {})}, indent=2, default=str)
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model_size", choices=list(MODEL_SHAPES), default="tiny")
    p.add_argument("--num_layers", type=int, default=None, help="override the shape's layer count (e.g. 8b at 4)")
    p.add_argument("--num_rows", type=int, default=None, help="rows to train on (default 2000; tiny 256)")
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
        "--lr",
        type=float,
        default=None,
        help="same for every set-up (default 1e-5; tiny/small 1e-3 so the loss moves)",
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
    args.num_rows = args.num_rows or (256 if args.model_size in ("tiny", "small") else 2000)
    args.steps = args.steps or (40 if gpu else 6)
    args.warmup_steps = args.warmup_steps if args.warmup_steps is not None else (10 if gpu else 2)
    if args.warmup_steps >= args.steps:
        p.error("--warmup_steps must be below --steps")
    args.length_scale = args.length_scale or LENGTH_SCALE[args.model_size]
    args.lr = args.lr or (1e-3 if args.model_size in ("tiny", "small") else 1e-5)
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
    raw_rows = calibrate_rows(tokenizer, args, args.length_scale)
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
        for setup in setups:
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
        "results": {
            k: [asdict(r) | {"real_tps": r.real_tps, "pad_fraction": r.pad_fraction} for r in v]
            for k, v in results.items()
        },
        "table": table,
    }
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
