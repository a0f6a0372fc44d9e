"""A model-free backend for previewing a build: deterministic canned outputs, no GPU, no server.

Critiques end with ``Conclusion: right`` or ``Conclusion: wrong`` (chosen by a hash of the row id), so
the whole pipeline — verdict parsing, filters, verdict mix, card — can be checked before paying for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from datasets_builders.backends.base import Backend, Completion, Request, ResultCallback, Sampling


class DryRunBackend(Backend):
    name = "dry_run"

    def __init__(self, model: str, stage: str) -> None:
        self.model = model
        self.stage = stage
        self.num_requests = 0

    def _text(self, request: Request, k: int) -> str:
        digest = int(hashlib.sha256(f"{request.id}/{k}".encode()).hexdigest(), 16)
        if self.stage == "critique":
            verdict = "right" if digest % 2 else "wrong"
            return f"[dry run critique of {request.id}] The steps check out up to the end.\nConclusion: {verdict}"
        return f"[dry run {self.stage} answer of {request.id}] So the answer is \\boxed{{{digest % 100}}}."

    def generate(self, requests: Sequence[Request], sampling: Sampling, on_result: ResultCallback) -> None:
        for request in requests:
            self.num_requests += 1
            outs = []
            for k in range(sampling.n):
                text = self._text(request, k)
                outs.append(Completion(text, "stop", len(text.split()), len(request.user.split())))
            on_result(request, outs)
