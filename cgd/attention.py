"""Mask-free causal attention for CGD batches: real varlen on padding-free batches without the flash-attn package.

Why: with ``padding_free`` and ``attn_implementation="sdpa"``, transformers builds a dense block-diagonal
``[1, 1, T, T]`` mask for the packed row, so sdpa leaves its flash kernel and runs slower than padded batches
(docs/performance.md). ``flash_attention_2`` avoids that but needs the ``flash-attn`` package, which many GPU images lack.

``register_varlen_attention()`` registers ``attn_implementation="cgd_varlen"`` with transformers:

* padding-free ``[1, T]`` batches (``cu_seq_lens_q`` from :class:`cgd.collator.CGDCollator`, or ``position_ids``
  restarting at 0): each sequence attends only to itself, through ``torch.nn.attention.varlen.varlen_attn``
  (FlashAttention-2 shipped inside torch >= 2.9, CUDA) when present, else one causal sdpa call per sequence
  (exact on any device; on CUDA each call takes sdpa's flash kernel);
* padded batches: causal sdpa with no mask. That is exact for every real token only with RIGHT padding (a real
  token sees only earlier positions, all real; pad positions carry no loss), which is what the CGD and TRL collators
  emit. Never use it for left-padded batches (generation).

No mask function is registered on purpose: transformers then skips building any mask for this implementation.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F

VARLEN_ATTENTION = "cgd_varlen"

#: Kernel for padding-free batches on CUDA: "auto" (torch's varlen_attn when present) or "sdpa_loop".
VARLEN_BACKEND = "auto"


def torch_varlen() -> Any | None:
    """``torch.nn.attention.varlen.varlen_attn`` if this torch has it (2.9+), else ``None``."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


class _Boundaries:
    """Sequence sizes of the current packed batch, read once per forward rather than once per layer."""

    ref: torch.Tensor | None = None
    sizes: list[int] = []


def _sequence_sizes(cu: torch.Tensor | None, position_ids: torch.Tensor | None, total: int) -> list[int]:
    key = cu if cu is not None else position_ids
    if key is not None and _Boundaries.ref is key:
        return _Boundaries.sizes
    if cu is not None:
        sizes = cu.diff().tolist()
    elif position_ids is not None:
        starts = (position_ids[0] == 0).nonzero().flatten().tolist() + [total]
        sizes = [b - a for a, b in zip(starts[:-1], starts[1:])]
    else:
        sizes = [total]
    _Boundaries.ref, _Boundaries.sizes = key, sizes
    return sizes


def _half(t: torch.Tensor) -> torch.Tensor:
    """FlashAttention takes fp16/bf16 only: under autocast, q/k come out of RoPE in fp32."""
    if t.dtype in (torch.float16, torch.bfloat16):
        return t
    kind = t.device.type
    return t.to(torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else torch.bfloat16)


def _varlen(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, sizes: list[int], scaling, kwargs
) -> torch.Tensor:
    varlen_attn = torch_varlen()
    params = inspect.signature(varlen_attn).parameters
    heads = query.shape[1]
    q, k, v = (_half(t[0].transpose(0, 1)).contiguous() for t in (query, key, value))  # [T, H, D]
    gqa = k.shape[1] != heads
    if gqa and "enable_gqa" not in params:
        rep = heads // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    extra: dict[str, Any] = {}
    if "scale" in params:
        extra["scale"] = scaling
    elif scaling is not None and abs(scaling * q.shape[-1] ** 0.5 - 1) > 1e-6:
        q = q * (scaling * q.shape[-1] ** 0.5)  # older signature: the kernel always scales by 1/sqrt(head_dim)
    if "is_causal" in params:  # torch 2.9-2.11
        extra["is_causal"] = True
    else:  # newer torch: causal is a (-1, 0) window
        extra["window_size"] = (-1, 0)
    if gqa and "enable_gqa" in params:
        extra["enable_gqa"] = True
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None:
        cu = torch.tensor([0, *sizes], dtype=torch.int64).cumsum(0)
    cu = cu.to(device=query.device, dtype=torch.int32)
    max_len = int(kwargs.get("max_length_q") or max(sizes))
    out = varlen_attn(q, k, v, cu, cu, max_len, max_len, **extra)
    return out.unsqueeze(0)  # [1, T, H, D]


def varlen_attention_forward(
    module: torch.nn.Module | None,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The ``cgd_varlen`` attention (see the module docstring). Shapes: q/k/v ``[B, H, T, D]`` -> ``[B, T, H, D]``."""
    batch, heads, total, _ = query.shape
    gqa = key.shape[1] != heads
    cu, position_ids = kwargs.get("cu_seq_lens_q"), kwargs.get("position_ids")
    packed = batch == 1 and (cu is not None or position_ids is not None)
    sizes = _sequence_sizes(cu, position_ids, total) if packed else [total]
    if len(sizes) <= 1:
        out = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scaling, enable_gqa=gqa)
        return out.transpose(1, 2), None
    if query.is_cuda and VARLEN_BACKEND == "auto" and torch_varlen() is not None:
        return _varlen(query, key, value, sizes, scaling, kwargs), None
    outs = [
        F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling, enable_gqa=gqa)
        for q, k, v in zip(query.split(sizes, 2), key.split(sizes, 2), value.split(sizes, 2))
    ]
    return torch.cat(outs, dim=2).transpose(1, 2), None


def varlen_kernel(device: torch.device | str) -> str:
    """Which kernel ``cgd_varlen`` uses for padding-free batches on ``device``."""
    cuda = torch.device(device).type == "cuda"
    if cuda and VARLEN_BACKEND == "auto" and torch_varlen() is not None:
        return "torch varlen_attn"
    return "per-sequence sdpa"


def register_varlen_attention() -> str:
    """Register ``cgd_varlen`` with transformers (idempotent); returns the ``attn_implementation`` name."""
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN_ATTENTION, varlen_attention_forward)
    return VARLEN_ATTENTION


def check_varlen_attention(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> str:
    """Compare ``cgd_varlen`` on a packed GQA batch with per-sequence causal sdpa, forward and backward.

    Returns ``"ok"``, or what went wrong (a mismatch, or the exception), so callers can fall back to sdpa.
    """
    try:
        torch.manual_seed(0)
        sizes = [37, 300, 5, 128]
        total = sum(sizes)
        q, k, v = (torch.randn(1, h, total, 64, device=device, dtype=dtype, requires_grad=True) for h in (8, 2, 2))
        cu = torch.tensor([0, *sizes]).cumsum(0).to(torch.int32)
        out, _ = varlen_attention_forward(
            None, q, k, v, None, scaling=0.125, cu_seq_lens_q=cu, max_length_q=max(sizes)
        )
        out.float().square().sum().backward()
        grads = [t.grad.clone() for t in (q, k, v)]
        for t in (q, k, v):
            t.grad = None
        ref = torch.cat(
            [
                F.scaled_dot_product_attention(a, b, c, is_causal=True, scale=0.125, enable_gqa=True)
                for a, b, c in zip(q.split(sizes, 2), k.split(sizes, 2), v.split(sizes, 2))
            ],
            dim=2,
        ).transpose(1, 2)
        ref.float().square().sum().backward()
        err = (out.float() - ref.float()).abs().max().item()
        gerr = max(((g - t.grad).abs().max() / (t.grad.abs().max() + 1e-6)).item() for g, t in zip(grads, (q, k, v)))
        if err > 3e-2 or gerr > 3e-2:
            return f"mismatch (max |out| err {err:.3g}, max relative grad err {gerr:.3g})"
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "do not use it here", with the reason
        return f"failed: {type(exc).__name__}: {exc}"
