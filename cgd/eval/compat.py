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
6. **prompts cut to max_new_tokens; max_new_tokens that cannot raise a task's length.** lighteval's padded
   transformers generation (``_padded_greedy_until``) tokenizes prompts with ``max_length=max_new_tokens`` and
   left truncation (at 128 new tokens 38% of MATH-500 and 64% of OlympiadBench prompts were cut, silently), then
   generates each task's own ``generation_size``. :func:`keep_prompts_whole` tokenizes prompts whole, makes the
   run's ``max_new_tokens`` the generation length (up or down), records the real ``truncated_tokens_count``, and
   makes a prompt longer than the model's context an error (or, with ``CGD_EVAL_PROMPT_CUT=count``, a counted
   event). :func:`cpu_batch_size` stops the batch-size probe from 512 on CPU, :func:`cache_outside_model_folders`
   keeps lighteval's sample cache out of local model folders, :func:`ifeval_without_punkt` scores an IFEval check
   that needs missing nltk data as not followed instead of failing the run, and :func:`system_prompt_per_doc`
   lets the ``cgd_*_paper`` tasks put their instruction in a system line.
7. **huggingface_hub 2.x / xxhash 4.x.** Not shimmed: pinned in setup.cfg (``huggingface_hub<2``:
   ``mt_bench``'s judge metric calls ``HfApi.list_models(model_name=...)`` while the registry imports it;
   ``xxhash<4``: ``info_loggers`` hashes ``str``). :func:`check_versions` warns when they are violated.

:func:`apply` runs all of the above; :mod:`cgd.eval.cli` is the CLI that applies them and then hands
over to lighteval's own typer app.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Callable
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


#: What a run does when a prompt does not fit the model's context: "error" (default) stops before generating;
#: "count" lets lighteval cut it from the left and records it (``truncated_tokens_count`` in the details, a
#: warning in the log, and the "prompts cut" column of the runner's report).
PROMPT_CUT_VAR = "CGD_EVAL_PROMPT_CUT"
#: Batch size for CPU runs that set none (lighteval would probe upwards of 512 and be killed for memory first).
CPU_BATCH_SIZE = 4


class PromptTooLongError(RuntimeError):
    """A prompt longer than the model's context would be cut."""


def keep_prompts_whole() -> None:
    """Tokenize every prompt whole in lighteval's padded transformers generation, and let the run's
    ``max_new_tokens`` set the generation length up or down. Idempotent.

    lighteval 0.13's ``TransformersModel._padded_greedy_until`` tokenizes each batch with
    ``max_length=generation_parameters.max_new_tokens`` and left truncation, so with a small generation cap every
    longer prompt is cut from the left, silently; it then generates ``doc.generation_size`` tokens (the task's
    size), so the run's ``max_new_tokens`` can lower but never raise it; and it records ``truncated_tokens_count``
    as characters minus tokens. Here each doc's ``generation_size`` becomes the run's ``max_new_tokens`` (when
    set), every prompt is measured in tokens first, the tokenizer's ``max_length`` becomes the longest prompt plus
    its generation (capped at the model's context), and ``truncated_tokens_count`` is the number of prompt tokens
    really cut. A prompt longer than the model's context is an error (:data:`PROMPT_CUT_VAR`).
    """
    if _state.get("prompts"):
        return
    from lighteval.models.transformers.transformers_model import TransformersModel

    original = TransformersModel._padded_greedy_until

    @functools.wraps(original)
    def _padded_greedy_until(self: Any, docs: list) -> list:
        config = self.generation_config_dict
        saved = dict(config)
        run_cap = config.get("max_new_tokens")
        if run_cap is not None:
            docs = [dataclasses.replace(doc, generation_size=int(run_cap)) for doc in docs]
        lengths = [
            len(
                self.tokenizer(self.prompt_manager.prepare_prompt(doc), add_special_tokens=self.add_special_tokens)[
                    "input_ids"
                ]
            )
            for doc in docs
        ]
        cut = [max(0, n - (self.max_length - 1)) for n in lengths]
        report_cuts([doc.task_name for doc in docs], cut, self.max_length)
        window = max((n + (doc.generation_size or 0) for n, doc in zip(lengths, docs)), default=1)
        # lighteval reads config["max_new_tokens"] as the tokenizer's max_length (and the batch-size probe's input
        # length) and nothing else on this path: give it room for the longest prompt and its generation.
        config["max_new_tokens"] = min(window, self.max_length)
        try:
            responses = original(self, docs)
        finally:
            config.clear()
            config.update(saved)
        for response, n in zip(responses, cut):
            response.truncated_tokens_count = n
        return responses

    TransformersModel._padded_greedy_until = _padded_greedy_until
    _state["prompts"] = True


def report_cuts(task_names: list[str], cut: list[int], max_length: int) -> None:
    """Raise (default) or log how many prompts per task exceed the model's context (see :data:`PROMPT_CUT_VAR`)."""
    per_task: dict[str, int] = {}
    for task, n in zip(task_names, cut):
        if n:
            per_task[task] = per_task.get(task, 0) + 1
    if not per_task:
        return
    summary = ", ".join(f"{task}: {count} of {task_names.count(task)}" for task, count in sorted(per_task.items()))
    policy = os.environ.get(PROMPT_CUT_VAR, "error").strip().lower()
    if policy != "count":
        raise PromptTooLongError(
            f"prompts longer than the model's {max_length}-token context would be cut ({summary}); raise max_length in "
            f"the model args, or set {PROMPT_CUT_VAR}=count to cut them from the left and count them in the report"
        )
    logger.warning("prompts cut from the left to fit the %d-token context: %s", max_length, summary)


def cpu_batch_size() -> None:
    """On CPU, use :data:`CPU_BATCH_SIZE` when the model args set no batch size. Idempotent.

    lighteval 0.13's ``_get_batch_size`` probes from 512 down, halving on out-of-memory errors; a CPU run is killed
    by the OS (24 GB RSS for SmolLM2-135M) long before an error is raised, after minutes with no progress shown.
    """
    if _state.get("batch"):
        return
    from lighteval.models.transformers.transformers_model import TransformersModel

    original = TransformersModel._get_batch_size

    @functools.wraps(original)
    def _get_batch_size(
        self: Any, max_input_length: int, override_bs: int | None, starting_batch_size: int = 512
    ) -> int:
        if override_bs is None and str(getattr(self, "device", "")).startswith("cpu"):
            logger.info("cgd.eval.compat: CPU run without batch_size: using %d", CPU_BATCH_SIZE)
            return CPU_BATCH_SIZE
        return original(self, max_input_length, override_bs, starting_batch_size)

    TransformersModel._get_batch_size = _get_batch_size
    _state["batch"] = True


def cache_outside_model_folders() -> None:
    """Keep lighteval's sample cache under its ``cache_dir`` for local model paths. Idempotent.

    lighteval 0.13's ``SampleCache`` uses ``Path(cache_dir) / model_name / hash``; an absolute ``model_name``
    (a local checkpoint) replaces ``cache_dir``, so ``GENERATIVE.parquet`` files land inside the model folder,
    where a later ``push_to_hub`` of that folder would upload them. Here the cache uses the path's name relative
    to the root instead.
    """
    if _state.get("cache"):
        return
    from lighteval.utils import cache_management

    original = cache_management.SampleCache.__init__

    @functools.wraps(original)
    def __init__(self: Any, model_config: Any) -> None:
        name = str(model_config.model_name)
        if os.path.isabs(name):
            model_config = model_config.model_copy(update={"model_name": name.lstrip(os.sep)})
        original(self, model_config)

    cache_management.SampleCache.__init__ = __init__
    _state["cache"] = True


def ifeval_without_punkt() -> None:
    """Score an IFEval instruction whose check needs nltk data that is not installed as not followed. Idempotent.

    lighteval 0.13's sentence-count check loads nltk's punkt tokenizer and its stop-word check downloads
    ``stopwords``; offline without them the check raises ``LookupError`` inside the metric and the whole run fails.
    """
    if _state.get("ifeval"):
        return
    from lighteval.tasks.tasks.ifeval import instructions

    for cls in vars(instructions).values():
        if isinstance(cls, type) and "check_following" in vars(cls):
            cls.check_following = _not_followed_on_lookup_error(cls.check_following, cls.__name__)
    _state["ifeval"] = True


def _not_followed_on_lookup_error(check: Callable, name: str) -> Callable:
    @functools.wraps(check)
    def check_following(self: Any, value: str) -> bool:
        try:
            return check(self, value)
        except LookupError as err:  # nltk data missing: `python -m nltk.downloader punkt punkt_tab stopwords`
            MISSING_NLTK[name] = MISSING_NLTK.get(name, 0) + 1
            if MISSING_NLTK[name] == 1:
                logger.warning(
                    "IFEval %s needs nltk data that is not installed; scored as not followed (%s)", name, err
                )
            return False

    return check_following


#: IFEval instruction class -> number of checks scored as not followed because nltk data was missing.
MISSING_NLTK: dict[str, int] = {}


def system_prompt_per_doc() -> None:
    """Let a task put a system line in a doc (``doc.specific["system_prompt"]``). Idempotent.

    lighteval 0.13 has one system prompt per run (the model args' ``system_prompt``), and ``doc.instruction`` goes
    into the user turn. The paper protocol's tasks (``cgd_*_paper``) put the reasoning request in a system line
    with the bare question as the user turn, as the authors' harness does; a run-level ``system_prompt`` still
    wins.
    """
    if _state.get("system"):
        return
    from lighteval.tasks.prompt_manager import PromptManager

    original = PromptManager.prepare_prompt

    @functools.wraps(original)
    def prepare_prompt(self: Any, doc: Any) -> Any:
        system = (doc.specific or {}).get("system_prompt") if isinstance(doc.specific, dict) else None
        if system is None or self.system_prompt is not None:
            return original(self, doc)
        self.system_prompt = system
        try:
            return original(self, doc)
        finally:
            self.system_prompt = None

    original_api = PromptManager.prepare_prompt_api

    @functools.wraps(original_api)
    def prepare_prompt_api(self: Any, doc: Any) -> Any:
        system = (doc.specific or {}).get("system_prompt") if isinstance(doc.specific, dict) else None
        if system is None or self.system_prompt is not None:
            return original_api(self, doc)
        self.system_prompt = system
        try:
            return original_api(self, doc)
        finally:
            self.system_prompt = None

    PromptManager.prepare_prompt = prepare_prompt
    PromptManager.prepare_prompt_api = prepare_prompt_api
    _state["system"] = True


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
        keep_prompts_whole()
        cpu_batch_size()
        cache_outside_model_folders()
        ifeval_without_punkt()
        system_prompt_per_doc()
        install_thread_safe_timeouts()
    finally:
        torch.set_grad_enabled(grad_enabled)
    _state["applied"] = True
