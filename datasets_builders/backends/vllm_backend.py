"""In-process vLLM (``vllm.LLM``): batched, tensor parallel, imported only when a stage asks for it.

Prompts are rendered with the model's tokenizer through :func:`cgd.templates.render_prompt` — the same
rendering as the transformers backend and the training collator — and generated in chunks of
``batch_size`` rows so that each chunk is checkpointed as soon as it finishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasets_builders.backends.base import Backend, Completion, Request, ResultCallback, Sampling

VLLM_MISSING = (
    "The `vllm` backend needs vLLM, which is not installed. Install it on a CUDA machine with "
    "`pip install -e '.[vllm]'` (vllm>=0.33,<0.34), or choose `backend: openai` (any OpenAI-compatible "
    "server, e.g. `vllm serve`) or `backend: transformers` (small models)."
)


def import_vllm() -> Any:
    """``import vllm`` with an error that says what to do instead."""
    try:
        import vllm
    except ImportError as err:
        raise ImportError(VLLM_MISSING) from err
    return vllm


def sampling_params_kwargs(sampling: Sampling) -> dict[str, Any]:
    """``vllm.SamplingParams`` arguments of a stage."""
    kwargs: dict[str, Any] = {
        "n": sampling.n,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p if not sampling.greedy else 1.0,
        "max_tokens": sampling.max_tokens,
    }
    if not sampling.greedy and sampling.seed is not None:
        kwargs["seed"] = sampling.seed
    return kwargs


def llm_kwargs(
    model: str,
    tensor_parallel_size: int,
    gpu_memory_utilization: float,
    max_model_len: int | None,
    dtype: str,
    trust_remote_code: bool,
    seed: int | None,
) -> dict[str, Any]:
    """``vllm.LLM`` constructor arguments."""
    kwargs: dict[str, Any] = {
        "model": model,
        "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization,
        "dtype": dtype,
        "trust_remote_code": trust_remote_code,
    }
    if max_model_len is not None:
        kwargs["max_model_len"] = max_model_len
    if seed is not None:
        kwargs["seed"] = seed
    return kwargs


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, model: str, batch_size: int = 1024, **llm_options: Any) -> None:
        vllm = import_vllm()
        self.vllm = vllm
        self.model_name = model
        self.batch_size = max(1, batch_size)
        self.llm = vllm.LLM(**llm_kwargs(model, **llm_options))
        self.tokenizer = self.llm.get_tokenizer()
        self.num_requests = 0

    def render(self, request: Request) -> str:
        from cgd.templates import PromptTemplates, render_prompt

        return render_prompt(self.tokenizer, request.user, PromptTemplates(system_prompt=request.system))

    def generate(self, requests: Sequence[Request], sampling: Sampling, on_result: ResultCallback) -> None:
        params = self.vllm.SamplingParams(**sampling_params_kwargs(sampling))
        for start in range(0, len(requests), self.batch_size):
            batch = list(requests[start : start + self.batch_size])
            outputs = self.llm.generate([self.render(r) for r in batch], params, use_tqdm=False)
            self.num_requests += len(batch)
            for request, output in zip(batch, outputs):
                prompt_tokens = len(output.prompt_token_ids or [])
                on_result(
                    request,
                    [
                        Completion(o.text, o.finish_reason or "stop", len(o.token_ids), prompt_tokens)
                        for o in output.outputs
                    ],
                )

    def close(self) -> None:
        import gc

        del self.llm
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
