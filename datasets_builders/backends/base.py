"""What every backend takes and returns: requests in, completions out, one callback per finished request."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


class BackendError(RuntimeError):
    """A stage could not get its generations (server unreachable, retries exhausted...)."""


@dataclass(frozen=True)
class Request:
    """One generation request: a row id and the chat turns to answer.

    ``row`` holds the row values the stage's template may use (question, reference answer, draft,
    critique): model backends answer the rendered turns, a backend that works from the data itself (the
    rule-based reference teacher) reads them here.
    """

    id: str
    user: str
    system: str | None = None
    row: Mapping[str, str | None] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def messages(self) -> list[dict[str, str]]:
        turns = [{"role": "system", "content": self.system}] if self.system else []
        return [*turns, {"role": "user", "content": self.user}]


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters of a stage (temperature 0 means greedy)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    n: int = 1
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class Completion:
    """One generated answer: its text, why it stopped (``stop``/``length``) and token counts."""

    text: str
    finish_reason: str
    num_tokens: int
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Rejection:
    """The server refused one request as invalid (HTTP 400/413/422, e.g. a prompt over the context length).

    The stage records the row as failed, with this status and reason, and goes on; it is counted in the build
    report and a rerun does not send it again.
    """

    status: int
    reason: str


#: Called once per finished request with its ``n`` completions, or a :class:`Rejection`; the stage checkpoints
#: it right away.
ResultCallback = Callable[[Request, "list[Completion] | Rejection"], None]


class Backend(ABC):
    """A generation engine for one model."""

    name: str = "backend"

    @abstractmethod
    def generate(self, requests: Sequence[Request], sampling: Sampling, on_result: ResultCallback) -> None:
        """Generate for every request, calling ``on_result`` as each one finishes (any order).

        Must raise :class:`BackendError` (never call ``on_result`` with made-up outputs) when a request
        cannot be served for a reason that is not the request's own; a request the server rejects as invalid
        is reported with a :class:`Rejection`. Results already delivered stay delivered.
        """

    def close(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Free the model (GPU memory) before another backend loads."""
