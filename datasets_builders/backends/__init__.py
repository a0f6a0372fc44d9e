"""Generation backends, chosen per stage: ``vllm``, ``openai``, ``transformers``, ``reference`` (and ``dry_run``).

Heavy engines are imported only by :func:`make_backend` when a stage uses them.
"""

from __future__ import annotations

from typing import Any

from datasets_builders.backends.base import (
    Backend,
    BackendError,
    Completion,
    Rejection,
    Request,
    ResultCallback,
    Sampling,
)

__all__ = [
    "Backend",
    "BackendError",
    "Completion",
    "Rejection",
    "Request",
    "ResultCallback",
    "Sampling",
    "make_backend",
]


def make_backend(spec: Any, model_args: Any) -> Backend:
    """The backend a stage asks for (``spec``: a StageSpec; ``model_args``: the shared ModelArgs)."""
    if spec.backend == "openai":
        from datasets_builders.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(
            spec.model,
            spec.base_url,
            api_key_env=model_args.api_key_env,
            max_concurrency=model_args.max_concurrency,
            max_retries=model_args.max_retries,
            timeout=model_args.request_timeout,
        )
    if spec.backend == "transformers":
        from datasets_builders.backends.transformers_backend import TransformersBackend

        return TransformersBackend(
            spec.model,
            batch_size=model_args.batch_size,
            device=model_args.device,
            dtype=model_args.dtype,
            trust_remote_code=model_args.trust_remote_code,
        )
    if spec.backend == "vllm":
        from datasets_builders.backends.vllm_backend import VLLMBackend

        return VLLMBackend(
            spec.model,
            batch_size=model_args.batch_size,
            tensor_parallel_size=model_args.tensor_parallel_size,
            gpu_memory_utilization=model_args.gpu_memory_utilization,
            max_model_len=model_args.max_model_len,
            dtype=model_args.dtype,
            trust_remote_code=model_args.trust_remote_code,
            seed=spec.seed,
        )
    if spec.backend == "dry_run":
        from datasets_builders.backends.dry_run import DryRunBackend

        return DryRunBackend(spec.model, spec.name)
    if spec.backend == "reference":
        from datasets_builders.backends.reference_teacher import ReferenceTeacherBackend

        return ReferenceTeacherBackend(spec.name)
    raise ValueError(f"Unknown backend {spec.backend!r}")


def backend_key(spec: Any) -> tuple:
    """Stages with the same key share one loaded backend (the teacher loads once for three stages)."""
    if spec.backend in ("dry_run", "reference"):  # model-free: one per stage
        return (spec.backend, spec.model, spec.name)
    return (spec.backend, spec.model, spec.base_url)
