"""Kill a real build (a `python datasets_builders/build_cgd.py` process) with SIGKILL mid-stage, run the same
command again: the rows of an uninterrupted build, and no finished request sent twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cgd import schema
from datasets_builders.build_cgd import main

REPO = Path(__file__).resolve().parents[1]
NUM_ROWS = 16


def _args(questions: Path, model: Path, out: Path) -> list[str]:
    return [
        "--source", str(questions), "--student_model", str(model), "--teacher_model", str(model),
        "--backend", "transformers", "--device", "cpu", "--dtype", "float32", "--batch_size", "1",
        "--probe_max_tokens", "16", "--critique_max_tokens", "16", "--refine_max_tokens", "16",
        "--filter_unparsed", "false", "--filter_empty", "false", "--filter_truncated", "false",
        "--output_dir", str(out), "--progress", "false",
    ]  # fmt: skip


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def _rows(folder: Path) -> list[dict]:
    import datasets

    return sorted(datasets.load_dataset(str(folder), split="train").to_list(), key=lambda r: r[schema.ID])


def test_sigkill_mid_stage_then_resume_matches_an_uninterrupted_build(tmp_path, tiny_checkpoint):
    import torch

    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"question": f"How many apples are {i} plus {i + 2}?", "answer": str(2 * i + 2)}) + "\n"
            for i in range(NUM_ROWS)
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}

    killed = tmp_path / "killed"
    shard = killed / "checkpoints" / "shard-00000-of-00001"
    proc = subprocess.Popen(
        [sys.executable, "datasets_builders/build_cgd.py", *_args(questions, tiny_checkpoint, killed)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while _lines(shard / "critique.jsonl") < 3:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the build never reached the critique stage"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    done = {stage: _lines(shard / f"{stage}.jsonl") for stage in ("probe", "critique", "refine")}
    assert done["probe"] == NUM_ROWS and 3 <= done["critique"] < NUM_ROWS and done["refine"] == 0, done
    with open(shard / "critique.jsonl", "ab") as f:
        f.write(b'{"id": "torn", "outputs": [{"text": "half a rec')  # as if killed inside a write

    # The same command again, in this process (the script's entry point; a fresh interpreter would only
    # add import time).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        assert main(_args(questions, tiny_checkpoint, killed)) == 0
        resume_s = time.perf_counter() - start
        reference = tmp_path / "reference"
        assert main(_args(questions, tiny_checkpoint, reference)) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads((killed / "build_report.json").read_text())
    assert report["this_run"]["probe"]["requests"] == 0
    assert report["this_run"]["critique"]["requests"] == NUM_ROWS - done["critique"]
    assert report["this_run"]["critique"]["torn_bytes"] > 0
    assert report["this_run"]["refine"]["requests"] == NUM_ROWS
    assert report["stages"]["critique"]["rows"] == NUM_ROWS  # nothing lost, nothing twice
    assert all(_lines(shard / f"{s}.jsonl") == NUM_ROWS for s in ("probe", "critique", "refine"))

    resumed_rows, reference_rows = _rows(killed), _rows(reference)
    assert len(resumed_rows) == NUM_ROWS and len({r[schema.ID] for r in resumed_rows}) == NUM_ROWS
    assert resumed_rows == reference_rows
    print(f"resume after SIGKILL: {resume_s:.1f}s for {NUM_ROWS - done['critique']} critiques + {NUM_ROWS} refines")
