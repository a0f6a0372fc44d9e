"""Local batched ``generate`` with transformers, for small models (CPU demo, tests).

Prompts are rendered with :func:`cgd.templates.render_prompt` (the model's chat template, or the plain
``Question: ... Answer:`` layout for base models) and left-padded so a batch generates in lockstep.
A sequence that emits an end-of-sequence token finished with ``stop``; one that ran out of
``max_tokens`` with ``length``. Token counts include the end-of-sequence token and exclude padding.
Greedy decoding is deterministic for a fixed batch composition (``batch_size: 1`` makes it independent of
which rows share a batch, e.g. across a resume).

A row is delivered (checkpointed, and the progress bar moves) as soon as all its sequences have emitted an
end-of-sequence token, while the rest of its batch still generates: a stopping criterion watches each step.
Its tokens are final at that point (later positions are padding), so the result is the same as at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasets_builders.backends.base import Backend, Completion, Request, ResultCallback, Sampling


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(
        self,
        model: str,
        batch_size: int = 8,
        device: str | None = None,
        dtype: str = "auto",
        trust_remote_code: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_name = model
        self.batch_size = max(1, batch_size)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left", trust_remote_code=trust_remote_code)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(
            model, dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
        self.model.to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.num_requests = 0

    def _render(self, request: Request) -> str:
        from cgd.templates import PromptTemplates, has_chat_template, render_prompt

        templates = PromptTemplates(system_prompt=request.system)
        prompt = render_prompt(self.tokenizer, request.user, templates)
        if not has_chat_template(self.tokenizer) and self.tokenizer.bos_token:
            prompt = self.tokenizer.bos_token + prompt
        return prompt

    def _generation_config(self, sampling: Sampling) -> Any:
        from transformers import GenerationConfig

        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "num_return_sequences": sampling.n,
            "do_sample": not sampling.greedy,
            "eos_token_id": sorted(self.eos_ids),
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if not sampling.greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
        return GenerationConfig(**kwargs)

    def _split(self, tokens: list[int], max_tokens: int) -> tuple[list[int], str]:
        for i, tok in enumerate(tokens):
            if tok in self.eos_ids:
                return tokens[: i + 1], "stop"
        return tokens, "length" if len(tokens) >= max_tokens else "stop"

    def _completions(self, rows: list[list[int]], prompt_len: int, max_tokens: int) -> list[Completion]:
        out = []
        for row in rows:
            tokens, reason = self._split(row, max_tokens)
            text = self.tokenizer.decode([t for t in tokens if t not in self.eos_ids], skip_special_tokens=True)
            out.append(Completion(text, reason, len(tokens), prompt_len))
        return out

    def generate(self, requests: Sequence[Request], sampling: Sampling, on_result: ResultCallback) -> None:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        backend, n = self, sampling.n

        class DeliverFinished(StoppingCriteria):
            """Hands over each request whose ``n`` sequences all ended, at the step they end (never stops any)."""

            def __init__(self, batch: list[Request], width: int, prompt_lens: list[int]) -> None:
                self.batch, self.width, self.prompt_lens = batch, width, prompt_lens
                self.delivered: set[int] = set()

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                new = input_ids[:, self.width :]
                ended = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
                for eos in backend.eos_ids:
                    ended |= (new == eos).any(dim=1)
                for b, request in enumerate(self.batch):
                    if b not in self.delivered and bool(ended[b * n : (b + 1) * n].all()):
                        self.delivered.add(b)
                        rows = new[b * n : (b + 1) * n].tolist()
                        on_result(request, backend._completions(rows, self.prompt_lens[b], sampling.max_tokens))
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        config = self._generation_config(sampling)
        for start in range(0, len(requests), self.batch_size):
            batch = list(requests[start : start + self.batch_size])
            prompts = [self._render(r) for r in batch]
            enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed + start)
            width = enc["input_ids"].shape[1]
            prompt_lens = [int(x) for x in enc["attention_mask"].sum(dim=1).tolist()]
            watcher = DeliverFinished(batch, width, prompt_lens)
            with torch.inference_mode():
                out = self.model.generate(
                    **enc, generation_config=config, stopping_criteria=StoppingCriteriaList([watcher])
                )
            new = out[:, width:].tolist()
            self.num_requests += len(batch)
            for b, request in enumerate(batch):  # the rest: rows that ran to max_tokens
                if b not in watcher.delivered:
                    on_result(
                        request, self._completions(new[b * n : (b + 1) * n], prompt_lens[b], sampling.max_tokens)
                    )

    def close(self) -> None:
        import gc

        del self.model
        gc.collect()
