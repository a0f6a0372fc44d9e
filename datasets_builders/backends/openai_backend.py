"""Any OpenAI-compatible server (``vllm serve``, SGLang, TGI, ``transformers serve``, Inference Providers).

Requests go out through ``openai.AsyncOpenAI`` with a fixed pool of workers (bounded concurrency). Retries
with exponential backoff and jitter on connection errors, timeouts, 408/409/429 and 5xx are the client's
own (``max_retries``). When a request still fails, the stage fails with a :class:`BackendError` that says
why; rows already finished stay checkpointed and nothing empty is written for the failed ones.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

from datasets_builders.backends.base import Backend, BackendError, Completion, Request, ResultCallback, Sampling


def request_kwargs(model: str, request: Request, sampling: Sampling, n: int) -> dict[str, Any]:
    """The ``chat.completions.create`` arguments of one request (``n``/``seed`` only when they matter)."""
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": request.messages(),
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
    }
    if n > 1:
        kwargs["n"] = n
    if not sampling.greedy and sampling.seed is not None:
        kwargs["seed"] = sampling.seed
    return kwargs


def completions_from_response(response: Any) -> list[Completion]:
    """One :class:`Completion` per choice; usage is split evenly across choices when there are several."""
    choices = list(response.choices or [])
    usage = getattr(response, "usage", None)
    completion_tokens = getattr(usage, "completion_tokens", 0) or 0
    prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
    per_choice = completion_tokens // max(len(choices), 1)
    return [
        Completion(
            text=(choice.message.content or "") if choice.message else "",
            finish_reason=choice.finish_reason or "stop",
            num_tokens=per_choice,
            prompt_tokens=prompt_tokens,
        )
        for choice in choices
    ]


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 64,
        max_retries: int = 6,
        timeout: float = 900.0,
    ) -> None:
        import openai  # noqa: F401 - fail here, at stage start, when the client is missing

        self.model = model
        self.base_url = base_url
        self.api_key = os.environ.get(api_key_env) or "EMPTY"  # local servers take any key
        self.max_concurrency = max(1, max_concurrency)
        self.max_retries = max_retries
        self.timeout = timeout
        self.num_requests = 0  # HTTP calls made (a request with n > 1 may need several on servers ignoring n)
        self.server_wait_s = 0.0  # time spent awaiting the client call (server + network + the client's work)

    def _client(self):
        import openai

        return openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key, max_retries=self.max_retries, timeout=self.timeout
        )

    async def _complete(self, client: Any, request: Request, sampling: Sampling) -> list[Completion]:
        outs: list[Completion] = []
        while len(outs) < sampling.n:  # servers that ignore `n` (transformers serve) answer with one choice
            kwargs = request_kwargs(self.model, request, sampling, sampling.n - len(outs))
            self.num_requests += 1
            start = time.perf_counter()
            response = await client.chat.completions.create(**kwargs)
            self.server_wait_s += time.perf_counter() - start
            got = completions_from_response(response)
            if not got:
                raise BackendError(f"{self.base_url} answered request {request.id} with no choices")
            outs.extend(got)
        return outs[: sampling.n]

    async def _run(self, requests: Sequence[Request], sampling: Sampling, on_result: ResultCallback) -> None:
        queue: asyncio.Queue[Request] = asyncio.Queue()
        for request in requests:
            queue.put_nowait(request)
        client = self._client()

        async def worker() -> None:
            while True:
                try:
                    request = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                on_result(request, await self._complete(client, request, sampling))

        workers = [asyncio.create_task(worker()) for _ in range(min(self.max_concurrency, len(requests)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await client.close()

    def generate(self, requests: Sequence[Request], sampling: Sampling, on_result: ResultCallback) -> None:
        import openai

        if not requests:
            return
        try:
            asyncio.run(self._run(requests, sampling, on_result))
        except openai.APITimeoutError as err:
            raise BackendError(
                f"Requests to {self.base_url} timed out after {self.max_retries} retries "
                f"(timeout {self.timeout:g}s per request): {err}"
            ) from err
        except openai.APIConnectionError as err:
            raise BackendError(
                f"Cannot reach the OpenAI-compatible server at {self.base_url} (after {self.max_retries} retries): "
                f"{err.__cause__ or err}. Is the server running and is `base_url` right?"
            ) from err
        except openai.APIStatusError as err:
            raise BackendError(
                f"The server at {self.base_url} answered HTTP {err.status_code} for model {self.model!r}"
                f"{' after ' + str(self.max_retries) + ' retries' if err.status_code == 429 or err.status_code >= 500 else ''}: "
                f"{err.message}"
            ) from err
