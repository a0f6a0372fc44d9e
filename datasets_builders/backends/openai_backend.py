"""Any OpenAI-compatible server (``vllm serve``, SGLang, TGI, ``transformers serve``, Inference Providers).

Requests go out through ``openai.AsyncOpenAI`` with a fixed pool of workers (bounded concurrency). Retries
with exponential backoff and jitter on connection errors, timeouts, 408/409/429 and 5xx are the client's
own (``max_retries``); a response body that is not valid JSON (cut off in transit) is retried the same way.
When a request still fails, the stage fails with a :class:`BackendError` that names the server and says why;
rows already finished stay checkpointed and nothing empty is written for the failed ones.

A request the server rejects as invalid (HTTP 400, 413, 422: e.g. a prompt longer than the context) is the
row's own problem: it is reported as a :class:`Rejection` and the build goes on. When the first
:data:`REJECTIONS_BEFORE_GIVING_UP` answers of a stage (or all of them, when it has fewer) are rejections, the
settings (model, ``max_tokens``) are the likely cause and the stage fails instead.

A ``user:password@`` part of ``base_url`` is sent as HTTP basic auth and kept out of the URL the client logs.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from datasets_builders.backends.base import (
    Backend,
    BackendError,
    Completion,
    Rejection,
    Request,
    ResultCallback,
    Sampling,
)
from datasets_builders.config import redact_url

#: HTTP statuses that reject one request as invalid (the row is recorded as failed; the build goes on).
REJECTED_STATUSES = (400, 413, 422)
REJECTIONS_BEFORE_GIVING_UP = 8


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its ``user:password@`` part, and that part (for basic auth) when there is one."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), (
        parts.username or "",
        parts.password or "",
    )


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
        self.base_url, self._basic_auth = split_credentials(base_url)
        self.server = redact_url(base_url)  # for messages
        self.api_key = os.environ.get(api_key_env) or "EMPTY"  # local servers take any key
        self.max_concurrency = max(1, max_concurrency)
        self.max_retries = max_retries
        self.timeout = timeout
        self.num_requests = 0  # HTTP calls made (a request with n > 1 may need several on servers ignoring n)
        self.server_wait_s = 0.0  # time spent awaiting the client call (server + network + the client's work)
        self.rejected = 0
        self.succeeded = 0

    def _client(self):
        import openai

        http_client = None
        if self._basic_auth is not None:  # as httpx would do for a URL with credentials, minus the URL in its logs
            http_client = openai.DefaultAsyncHttpxClient(auth=self._basic_auth)
        return openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            max_retries=self.max_retries,
            timeout=self.timeout,
            http_client=http_client,
        )

    async def _create(self, client: Any, request: Request, kwargs: dict[str, Any]) -> Any:
        """One ``chat.completions.create``; a body that is not JSON (cut off) is retried like a 5xx."""
        import openai

        for attempt in range(self.max_retries + 1):
            try:
                return await client.chat.completions.create(**kwargs)
            except (json.JSONDecodeError, openai.APIResponseValidationError) as err:
                if attempt == self.max_retries:
                    raise BackendError(
                        f"The server at {self.server} answered request {request.id} with a body that is not valid "
                        f"JSON (cut off?) {self.max_retries + 1} times: {str(err).splitlines()[0][:200]}"
                    ) from None
                await asyncio.sleep(min(8.0, 0.5 * 2**attempt) * (0.75 + random.random() / 2))
        raise AssertionError("unreachable")

    async def _complete(self, client: Any, request: Request, sampling: Sampling) -> list[Completion]:
        outs: list[Completion] = []
        while len(outs) < sampling.n:  # servers that ignore `n` (transformers serve) answer with one choice
            kwargs = request_kwargs(self.model, request, sampling, sampling.n - len(outs))
            self.num_requests += 1
            start = time.perf_counter()
            response = await self._create(client, request, kwargs)
            self.server_wait_s += time.perf_counter() - start
            got = completions_from_response(response)
            if not got:
                raise BackendError(f"{self.server} answered request {request.id} with no choices")
            outs.extend(got)
        return outs[: sampling.n]

    async def _run(self, requests: Sequence[Request], sampling: Sampling, on_result: ResultCallback) -> None:
        import openai

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
                try:
                    result = await self._complete(client, request, sampling)
                except openai.APIStatusError as err:
                    if err.status_code not in REJECTED_STATUSES:
                        raise
                    self.rejected += 1
                    if not self.succeeded and self.rejected >= min(REJECTIONS_BEFORE_GIVING_UP, len(requests)):
                        raise BackendError(
                            f"The server at {self.server} rejected the first {self.rejected} requests (HTTP "
                            f"{err.status_code}: {_message(err)}); a setting is likely wrong (model, max_tokens), "
                            "not the rows"
                        ) from None
                    on_result(request, Rejection(err.status_code, _message(err)))
                    continue
                self.succeeded += 1
                on_result(request, result)

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
                f"Requests to {self.server} timed out after {self.max_retries} retries "
                f"(timeout {self.timeout:g}s per request): {err}"
            ) from err
        except openai.APIConnectionError as err:
            raise BackendError(
                f"Cannot reach the OpenAI-compatible server at {self.server} (after {self.max_retries} retries): "
                f"{err.__cause__ or err}. Is the server running and is `base_url` right?"
            ) from err
        except openai.APIStatusError as err:
            raise BackendError(
                f"The server at {self.server} answered HTTP {err.status_code} for model {self.model!r}"
                f"{' after ' + str(self.max_retries) + ' retries' if err.status_code == 429 or err.status_code >= 500 else ''}: "
                f"{_message(err)}"
            ) from err


def _message(err: Any) -> str:
    """The server's own error text, on one line and short (it goes into the report)."""
    body = getattr(err, "body", None)
    text = body.get("message") if isinstance(body, dict) and body.get("message") else getattr(err, "message", str(err))
    return " ".join(str(text).split())[:300]
