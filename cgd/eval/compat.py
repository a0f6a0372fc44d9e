"""Runtime shims that let lighteval 0.13.0 run offline on today's packages, without touching site-packages.

What lighteval 0.13.0 does that bites here, and what this module does about it:

1. **tinyBenchmarks.pkl download.** The task registry imports every built-in task module; importing
   ``lighteval.tasks.tasks.tiny_benchmarks`` builds ``TinyCorpusAggregator`` objects whose ``__init__``
   calls ``requests.get(<raw.githubusercontent.com>/tinyBenchmarks.pkl)`` with no timeout, so every
   ``lighteval accelerate|endpoint|tasks`` run dies offline with ``ConnectionError``.
   :func:`avoid_tinybenchmarks_download` pre-imports that module with ``requests.get`` answered by a
   local stub (status 503, which lighteval's code treats as "skip"); online it lets the real request
   through with a 10 s timeout and turns a failure into a warning. Only the tinyBenchmarks tasks need
   the file; nothing in cgd uses them.
2. **nltk punkt download.** ``lighteval.tasks.tasks.ifeval.instructions_utils`` calls ``nltk.download``
   at import when punkt is missing; offline that only logs an error and returns. Left alone (the
   ``ifeval`` checks that need punkt -- sentence counting -- score as not followed without it).
3. **signal-based timeouts.** lighteval's math parsing/verification guards use ``signal.alarm``, which
   raises ``ValueError`` outside the main thread. :func:`install_thread_safe_timeouts` swaps the
   ``timeout`` decorator those two modules look up at call time for one that is a no-op off the main
   thread (same behaviour on the main thread).
4. **litellm's removed disk cache.** ``lighteval.models.endpoints.litellm_model`` runs
   ``litellm.cache = Cache(type=LiteLLMCacheType.DISK)`` at import, and that module is imported by
   lighteval's model loader for *every* backend (accelerate included). litellm >= ~1.8x removed the disk
   backend (1.110.2 here: ``AttributeError: DISK``). :func:`tolerate_litellm_without_disk_cache`
   imports that module with ``DISK`` mapped to litellm's in-memory cache. When offline it also sets
   ``LITELLM_LOCAL_MODEL_COST_MAP=True`` so importing litellm does not retry a GitHub download.
5. **empty stop lists.** lighteval's litellm backend sends ``stop: []`` when a task has no stop
   sequence; ``transformers serve`` answers that with HTTP 500 (vllm accepts it), and lighteval then
   retries with backoff for minutes and scores an empty answer. :func:`send_no_empty_stop_lists`
   makes it send no ``stop`` field instead.
6. **max_new_tokens ignored by the transformers backend.** With the default (padded, not continuous)
   batching, ``TransformersModel._padded_greedy_until`` passes each task's ``generation_size`` to
   ``generate`` and the ``generation_parameters={max_new_tokens:N}`` of the model args only sizes the
   batch: a "max_new_tokens:16" run of ``cgd_math500`` generated 4080 tokens per sample.
   :func:`honour_max_new_tokens` caps each batch at the configured ``max_new_tokens`` (the behaviour the
   continuous-batching path and the endpoint backends already have).
7. **huggingface_hub 2.x / xxhash 4.x.** Not shimmed: pinned in setup.cfg (``huggingface_hub<2``:
   ``mt_bench``'s judge metric calls ``HfApi.list_models(model_name=...)`` while the registry imports it;
   ``xxhash<4``: ``info_loggers`` hashes ``str``). :func:`check_versions` warns when they are violated.

:func:`apply` runs all of the above; :mod:`cgd.eval.cli` is the CLI that applies them and then hands
over to lighteval's own typer app.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
import warnings
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

_TINY_MODULE = "lighteval.tasks.tasks.tiny_benchmarks"
_LITELLM_MODULE = "lighteval.models.endpoints.litellm_model"
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "CGD_OFFLINE")
_state: dict[str, bool] = {}


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE or CGD_OFFLINE is set to a truthy value."""
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"} for v in _OFFLINE_VARS)


class _StubResponse:
    status_code = 503
    content = b""
    text = ""


@contextmanager
def _patched_requests_get(offline: bool):
    import requests

    real_get = requests.get

    def offline_get(url: str, *args: Any, **kwargs: Any) -> _StubResponse:
        logger.info("cgd.eval.compat: offline, not downloading %s", url)
        return _StubResponse()

    failed: list[str] = []

    def bounded_get(url: str, *args: Any, **kwargs: Any) -> Any:
        if failed:  # one failure means no network: don't wait on (or warn about) every later request
            return _StubResponse()
        kwargs.setdefault("timeout", 10)
        try:
            return real_get(url, *args, **kwargs)
        except Exception as err:  # noqa: BLE001 - any network failure means "skip the optional file"
            failed.append(url)
            logger.warning("cgd.eval.compat: could not download %s (%s); tinyBenchmarks tasks disabled", url, err)
            return _StubResponse()

    requests.get = offline_get if offline else bounded_get
    try:
        yield
    finally:
        requests.get = real_get


def avoid_tinybenchmarks_download(offline: bool | None = None) -> None:
    """Import lighteval's tinyBenchmarks task module without its unguarded network download.

    Idempotent. Once imported, the registry's own ``import_module`` finds it in ``sys.modules``.
    """
    if _TINY_MODULE in sys.modules:
        return
    offline = is_offline() if offline is None else offline
    with _patched_requests_get(offline):
        importlib.import_module(_TINY_MODULE)


def tolerate_litellm_without_disk_cache() -> None:
    """Import lighteval's litellm backend even when litellm no longer has ``LiteLLMCacheType.DISK``.

    Idempotent; a no-op when litellm is absent or still has a disk cache.
    """
    if is_offline():
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if _LITELLM_MODULE in sys.modules:
        return
    try:
        import litellm.caching.caching as litellm_caching
    except ImportError:
        return
    real_type = litellm_caching.LiteLLMCacheType
    if hasattr(real_type, "DISK"):
        return

    class _Proxy(type):
        def __getattr__(cls, name: str) -> Any:
            return getattr(real_type, name)

    shim = _Proxy("LiteLLMCacheType", (), {"DISK": real_type.LOCAL})
    litellm_caching.LiteLLMCacheType = shim
    try:
        importlib.import_module(_LITELLM_MODULE)
    finally:
        litellm_caching.LiteLLMCacheType = real_type
    logger.info("cgd.eval.compat: litellm has no disk cache; lighteval's litellm backend uses the in-memory one")


def send_no_empty_stop_lists() -> None:
    """Make lighteval's litellm client omit ``stop`` rather than send an empty list. Idempotent."""
    if _state.get("stop_lists"):
        return
    try:
        from lighteval.models.endpoints.litellm_model import LiteLLMClient
    except ImportError:  # litellm missing: that backend is unavailable anyway
        return
    original = LiteLLMClient._prepare_stop_sequence

    @functools.wraps(original)
    def _prepare_stop_sequence(self: Any, stop_sequence: Any) -> Any:
        prepared = original(self, stop_sequence)
        return prepared if prepared else None

    LiteLLMClient._prepare_stop_sequence = _prepare_stop_sequence
    _state["stop_lists"] = True


def honour_max_new_tokens() -> None:
    """Cap lighteval's padded transformers generation at the model config's ``max_new_tokens``. Idempotent."""
    if _state.get("max_new_tokens"):
        return
    from lighteval.models.transformers.transformers_model import TransformersModel

    original = TransformersModel._generate_padded

    @functools.wraps(original)
    def _generate_padded(self: Any, *args: Any, **kwargs: Any) -> Any:
        cap = (getattr(self, "generation_config_dict", None) or {}).get("max_new_tokens")
        if cap is not None:
            if "max_new_tokens" in kwargs:
                requested = kwargs["max_new_tokens"]
                kwargs["max_new_tokens"] = cap if requested is None else min(requested, cap)
            elif len(args) >= 2:
                requested = args[1]
                args = (args[0], cap if requested is None else min(requested, cap), *args[2:])
        return original(self, *args, **kwargs)

    TransformersModel._generate_padded = _generate_padded
    _state["max_new_tokens"] = True


def install_thread_safe_timeouts() -> None:
    """lighteval's math timeouts usable from worker threads (the logic lives in the core: :mod:`cgd.answers`)."""
    from cgd.answers import install_thread_safe_timeouts as install

    install()


def check_versions() -> list[str]:
    """Warnings for installed versions known to break lighteval 0.13.0 (empty list when all is well)."""
    from importlib.metadata import PackageNotFoundError, version

    problems = []
    rules = {"huggingface_hub": (2, "list_models(model_name=...) is gone"), "xxhash": (4, "str hashing refused")}
    for package, (bad_major, why) in rules.items():
        try:
            major = int(version(package).split(".")[0])
        except (PackageNotFoundError, ValueError):
            continue
        if major >= bad_major:
            problems.append(
                f"{package} {version(package)} breaks lighteval 0.13.0 ({why}); install {package}<{bad_major}"
            )
    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    return problems


def apply() -> None:
    """Apply every shim (idempotent): version check, tinyBenchmarks download, litellm disk cache and
    empty stop lists, max_new_tokens in the transformers backend, thread-safe timeouts."""
    if _state.get("applied"):
        return
    import torch

    # litellm fetches its model price map from the internet when imported; its bundled copy serves.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # lighteval's transformers backend turns autograd off process-wide when imported; keep the caller's mode.
    grad_enabled = torch.is_grad_enabled()
    try:
        check_versions()
        avoid_tinybenchmarks_download()
        tolerate_litellm_without_disk_cache()
        send_no_empty_stop_lists()
        honour_max_new_tokens()
        install_thread_safe_timeouts()
    finally:
        torch.set_grad_enabled(grad_enabled)
    _state["applied"] = True
