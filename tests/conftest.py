"""Shared fixtures: tiny offline models and synthetic triplets (see cgd.testing)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _trackio_store(tmp_path_factory):
    """Runs that report to trackio (the CPU recipes do) log into a temporary store, not the user's HF_HOME."""
    os.environ["TRACKIO_DIR"] = str(tmp_path_factory.mktemp("trackio"))


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from cgd.testing import make_tiny_tokenizer

    return make_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A saved tiny random Llama + tokenizer, loadable by path."""
    from cgd.testing import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture()
def triplet_rows():
    from cgd.testing import make_triplet_rows

    return make_triplet_rows(16)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data when present; tests that need it skip cleanly otherwise."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture()
def fake_hub_api(monkeypatch) -> list[tuple]:
    """Replace ``huggingface_hub.HfApi`` with a recorder (no network); returns the list of calls it received."""
    import huggingface_hub

    calls: list[tuple] = []

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw))
            return f"https://huggingface.co/datasets/{repo_id}"

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return calls


@pytest.fixture(autouse=True)
def _isolate_process_state():
    """Undo process-wide state that some imports and in-process CLIs change, so tests don't leak into each other.

    lighteval's transformers backend calls ``torch.set_grad_enabled(False)`` when it is imported, and
    benchmark scripts run in-process quiet the ``cgd`` logger and set environment variables (e.g.
    ``TRANSFORMERS_VERBOSITY``) that later subprocesses inherit; any of these would break a later test
    that trains or reads logs.
    """
    import logging

    import torch

    grad_enabled = torch.is_grad_enabled()
    levels = {name: logging.getLogger(name).level for name in ("cgd", "datasets_builders")}
    environ = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(environ)
    torch.set_grad_enabled(grad_enabled)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    # A library's logging.config call (disable_existing_loggers) or an in-process CLI can switch the project's
    # loggers off or stop their propagation; caplog reads records through the root logger, so undo both.
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.split(".")[0] in ("cgd", "datasets_builders"):
            logger.disabled = False
            logger.propagate = True
