"""End to end: real lighteval runs of a tiny model through cgd's entry point, producing the report."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from cgd.eval.runner import evaluate_models

GSM8K_ROWS = [
    {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?", "answer": "3+4=7\n#### 7"},
    {"question": "What is 10 times 2?", "answer": "#### 20"},
]
MATH_ROWS = [
    {
        "problem": "What is $1/2+1/4$?\nPlease reason step by step, and put your final answer within \\boxed{}.",
        "answer": "\\frac{3}{4}",
    },
    {"problem": "Compute $2+2$.", "answer": "4"},
]
IFEVAL_ROWS = [
    {
        "key": 1,
        "prompt": "Write one sentence about the sea in lowercase letters only.",
        "instruction_id_list": ["change_case:english_lowercase"],
        "kwargs": [{"capital_frequency": None, "capital_relation": None}],
    },
]


def _write(folder: Path, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval-data")
    _write(root / "gsm8k", "test.jsonl", GSM8K_ROWS)
    _write(root / "math500", "test.jsonl", MATH_ROWS)
    _write(root / "ifeval", "train.jsonl", IFEVAL_ROWS)
    return root


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_accelerate_run_writes_report(tiny_checkpoint, eval_data, tmp_path):
    report = evaluate_models(
        [str(tiny_checkpoint)],
        ["cgd_gsm8k", "cgd_math500", "cgd_ifeval"],
        tmp_path / "eval",
        data_dir=eval_data,
        max_new_tokens=4,
        batch_size=4,
        device="cpu",
        labels=["tiny"],
        timeout=600,
    )
    (run,) = report.runs
    assert run.returncode == 0, (tmp_path / "eval" / "runs" / "tiny.log").read_text()[-3000:]
    for path in (report.markdown, report.csv, report.png):
        assert path.is_file() and path.stat().st_size > 0
    csv = pd.read_csv(report.csv)
    assert set(csv["task"]) == {"cgd_gsm8k", "cgd_math500", "cgd_ifeval"}
    metrics = set(csv["metric"])
    assert {"acc", "critique_rate", "boxed_rate", "verdict_rate", "prompt_level_strict_acc"} <= metrics
    values = csv["tiny"].dropna()
    assert ((values >= 0) & (values <= 1)).all()
    md = report.markdown.read_text()
    assert "| cgd_gsm8k | acc | 2 |" in md  # two rows evaluated, counted from the saved details
    details = list((tmp_path / "eval" / "runs" / "tiny").rglob("details_cgd_math500*.parquet"))
    assert len(details) == 1 and len(pd.read_parquet(details[0])) == 2
    # max_new_tokens caps generation (lighteval 0.13's padded path alone would use the task's 4096)
    responses = pd.read_parquet(details[0])["model_response"]
    lengths = [len(r["output_tokens"][0]) for r in responses]
    assert max(lengths) <= 4
    # ... and never cuts the prompt to it (lighteval 0.13 alone keeps the last 4 prompt tokens)
    assert all(len(r["input_tokens"]) > 20 and r["truncated_tokens_count"] == 0 for r in responses)
    assert "| cgd_math500 | acc | 2 | 0 |" in md  # prompts cut: none
    assert "up to 4 new tokens per answer" in md
    manifest = json.loads((tmp_path / "eval" / "runs.json").read_text())
    assert manifest["tasks"] == ["cgd_gsm8k|0", "cgd_math500|0", "cgd_ifeval|0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_litellm_endpoint_against_transformers_serve(tiny_checkpoint, eval_data, tmp_path):
    """`lighteval endpoint litellm` against a real OpenAI-compatible server on loopback."""
    port = _free_port()
    serve = Path(sys.executable).with_name("transformers")
    server = subprocess.Popen(
        [str(serve), "serve", str(tiny_checkpoint), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.time() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail("transformers serve did not come up")
                time.sleep(2)
        report = evaluate_models(
            [str(tiny_checkpoint)],
            ["cgd_gsm8k"],
            tmp_path / "eval",
            data_dir=eval_data,
            max_new_tokens=8,
            backend="litellm",
            base_url=f"http://127.0.0.1:{port}/v1",
            labels=["tiny-served"],
            timeout=600,
        )
        assert report.runs[0].returncode == 0
        csv = pd.read_csv(report.csv)
        assert set(csv["task"]) == {"cgd_gsm8k"}
        details = list((tmp_path / "eval" / "runs").rglob("details_cgd_gsm8k*.parquet"))
        responses = pd.read_parquet(details[0])["model_response"]
        assert len(responses) == 2 and all(len(r["text"]) == 1 for r in responses)
        log = (tmp_path / "eval" / "runs" / "tiny-served.log").read_text()
        assert "InternalServerError" not in log and "BadRequestError" not in log
        assert report.runs[0].wall_seconds < 240  # no minutes of retry backoff
    finally:
        server.terminate()
        server.wait(timeout=30)
