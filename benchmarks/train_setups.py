"""What ``train_throughput.py`` trains: model shapes, the synthetic rows, and the named training set-ups.

Models are random-init Llamas built from a config (nothing downloaded; the same seed gives the same weights). Rows
come from :mod:`cgd.testing`: word-salad triplets with CGD-like, log-normal token lengths (the default), or its short
arithmetic triplets repeated ``--triplet_repeat`` times. A set-up is one trainer configuration; each ``trl_*`` set-up
has a ``cgd_*`` twin with the same settings, and the runner compares such pairs step by step.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import math
import random
from dataclasses import dataclass, replace
from typing import Any

import torch

import cgd.attention as cgd_attention
from cgd.attention import VARLEN_ATTENTION, check_varlen_attention, varlen_kernel
from cgd.testing import make_text_rows, make_triplet_rows, synthetic_text

_SHAPE_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "tie_word_embeddings",
)
#: name: (hidden, intermediate, layers, heads, kv heads, vocab, tied embeddings), other config keys.
_SHAPES: dict[str, tuple[tuple, dict[str, Any]]] = {
    "tiny": ((64, 128, 2, 4, 2, 1024, True), {}),  # CPU tests: 2 layers, GQA
    "3.5m": ((256, 768, 4, 4, 4, 512, True), {}),  # the tiny tokenizer's vocabulary, no GQA: CPU step time
    "small": ((256, 768, 4, 4, 2, 8192, True), {}),  # matmuls, not Python, dominate a step; seconds on 2 cores
    "135m": ((576, 1536, 30, 9, 3, 49152, True), {"rope_theta": 100000.0}),  # SmolLM2-135M
    "1.2b": ((2048, 8192, 16, 32, 8, 128256, True), {"head_dim": 64, "rope_theta": 500000.0}),  # Llama-3.2-1B
    "8b": ((4096, 14336, 32, 32, 8, 128256, False), {"head_dim": 128, "rope_theta": 500000.0}),  # Llama-3.1-8B
}
MODEL_SHAPES: dict[str, dict[str, Any]] = {
    name: dict(zip(_SHAPE_FIELDS, values, strict=True), **extra) for name, (values, extra) in _SHAPES.items()
}

#: Per-device batch of the default-settings set-ups per shape, and of the fast ones.
DEFAULT_BATCH = {"tiny": 4, "3.5m": 4, "small": 4, "135m": 8, "1.2b": 4, "8b": 2}
FAST_BATCH = {"tiny": 8, "3.5m": 8, "small": 8, "135m": 16, "1.2b": 8, "8b": 4}

#: Row lengths as a fraction of the real ones (prompt ≈ 690, completion ≈ 440, max 2048): tiny keeps CPU tests fast.
LENGTH_SCALE = {"tiny": 0.2, "3.5m": 1.0, "small": 0.5, "135m": 1.0, "1.2b": 1.0, "8b": 1.0}


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
# Rows
# --------------------------------------------------------------------------------------------------


def _lognormal(rng: random.Random, mean: float, sigma: float, low: int) -> int:
    mu = math.log(mean) - sigma**2 / 2  # so that the mean is `mean`
    return max(low, int(rng.lognormvariate(mu, sigma)))


def make_rows(tokenizer: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The benchmark's raw triplets: ``--triplet_repeat`` arithmetic ones, else CGD-like log-normal lengths.

    Log-normal rows average ``--prompt_mean``/``--completion_mean`` tokens (× ``--length_scale``) once encoded: the
    tokenizer's tokens per word and the template's own prompt tokens are measured first. The prompt's tokens past
    the template are split between question (20%), initial answer (45%) and critique (35%).
    """
    if args.triplet_repeat:
        return make_triplet_rows(args.num_rows, seed=args.seed, repeat=args.triplet_repeat)
    from cgd.collator import CGDEncoder

    sample = synthetic_text(random.Random(12345), 5000)
    tokens_per_word = len(tokenizer(sample, add_special_tokens=False)["input_ids"]) / 5000
    overhead = CGDEncoder(tokenizer, "cgd", None).minimal_prompt_length() + 6  # + the verdict line
    prompt_mean = max(1.0, args.prompt_mean * args.length_scale - overhead)
    completion_mean = args.completion_mean * args.length_scale

    def word_counts(rng: random.Random) -> tuple[int, int, int, int]:
        body = _lognormal(rng, prompt_mean, args.length_sigma, 12) / tokens_per_word
        completion = _lognormal(rng, completion_mean, args.length_sigma, 8) / tokens_per_word
        return int(body * 0.20), int(body * 0.45), int(body * 0.35), int(completion) - 2

    return make_text_rows(args.num_rows, word_counts, seed=args.seed)


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

    def settings(self) -> tuple:
        """Everything but the name, path and note: a ``trl_*`` and a ``cgd_*`` set-up with equal settings pair up."""
        return (self.batch_size, self.gradient_checkpointing, self.bf16_weights, self.group_by_length,
                self.padding_free, self.attn, self.liger, self.compile)  # fmt: skip


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
    liger_status = check_liger(device) if liger_ok else "not installed" if gpu else "needs CUDA"
    liger_ok = liger_status == "ok"
    # fp32 master weights + bf16 autocast: bf16-stored weights lose AdamW updates at CGD's learning rates
    # (see --bf16_update_check); cgd_recipe_bf16w measures what they would buy.
    fast = dict(batch_size=b1, gradient_checkpointing=False, liger=liger_ok, attn=fast_attn)
    nockpt = dict(batch_size=b0, gradient_checkpointing=False)
    catalogue = [
        Setup("trl_defaults", "trl", b0, note="SFTTrainer defaults: padded, grad ckpt, sdpa"),
        Setup("cgd_defaults", "cgd", b0, note="CGD path, same settings as trl_defaults"),
        Setup("cgd_grouped", "cgd", b0, group_by_length=True, note="+ length-grouped batches"),
        Setup("cgd_padfree_sdpa", "cgd", b0, padding_free=True, note="+ padding-free, sdpa block-diagonal mask"),
        Setup("cgd_padfree", "cgd", b0, padding_free=True, attn=fast_attn, note=f"+ padding-free, {varlen_kind}"),
        Setup("trl_nockpt", "trl", **nockpt, note="trl_defaults without gradient checkpointing"),
        Setup("cgd_nockpt", "cgd", **nockpt, note="CGD path, same settings as trl_nockpt"),
        Setup("trl_nockpt_padfree", "trl", **nockpt, padding_free=True, note="trl_nockpt + TRL's padding-free"),
        Setup("cgd_nockpt_padfree", "cgd", **nockpt, padding_free=True, note="CGD path, same as trl_nockpt_padfree"),
        Setup("trl_fast", "trl", **fast, note="TRL with the recipe's kernel/precision/batch settings"),
        Setup("cgd_fast", "cgd", **fast, note="CGD path, same settings as trl_fast"),
        Setup("cgd_recipe", "cgd", **fast, group_by_length=True, note="cgd_fast + length-grouped"),
        Setup("cgd_recipe_padfree", "cgd", **fast, padding_free=True, note=f"cgd_fast + padding-free ({varlen_kind})"),
        Setup("cgd_recipe_bf16w", "cgd", **fast, group_by_length=True, bf16_weights=True, note="cgd_recipe + bf16 weights"),
        Setup("cgd_recipe_compile", "cgd", **fast, group_by_length=True, compile=True, note="cgd_recipe + torch.compile"),
    ]  # fmt: skip
    catalogue = {s.name: s for s in catalogue}
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


def check_liger(device: torch.device) -> str:
    """Apply liger's layer kernels to a small Llama and run a step; "ok" or why not (then the set-ups go without)."""
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        with restore_module("transformers.models.llama.modeling_llama"):
            model = build_model("tiny", None, "sdpa", device, 0, 0, 1)
            layers = dict(rope=True, rms_norm=True, swiglu=True)  # TRL keeps its own LM-head loss
            _apply_liger_kernel_to_instance(
                model=model, **layers, cross_entropy=False, fused_linear_cross_entropy=False
            )
            ids = torch.randint(3, 500, (2, 64), device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
        return "ok" if torch.isfinite(loss).item() else "non-finite loss"
    except Exception as exc:  # noqa: BLE001
        return f"failed: {type(exc).__name__}: {exc}"[:200]


@contextlib.contextmanager
def restore_module(module_name: str):
    """Undo global monkey-patches (liger patches transformers' Llama module functions) after a set-up."""
    module = importlib.import_module(module_name)
    saved = dict(vars(module))
    try:
        yield
    finally:
        for key, value in saved.items():
            if vars(module).get(key) is not value:
                setattr(module, key, value)
