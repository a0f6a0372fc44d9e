"""Experiment tracking: the CPU recipes report to trackio, which works offline and logs into a local store.

A tiny model trains through `python -m cgd.train` with the SmolLM2 CPU recipe, in a process where any connection to
a non-loopback host is refused and recorded; the loss is then read back from trackio's store with trackio's own CLI
and compared with the trainer's log history.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cgd.testing import make_triplet_rows, offline_subprocess_env

REPO_ROOT = Path(__file__).resolve().parents[1]
CPU_RECIPES = sorted((REPO_ROOT / "recipes" / "smollm2-135m").glob("*.yaml"))

# Runs `cgd.train` with the network cut: connections and name look-ups for non-loopback hosts raise and are recorded.
GUARDED_TRAIN = """
import atexit, json, socket, sys

attempts = []
LOOPBACK = ("127.", "::1", "localhost", "0.0.0.0")


def check(host):
    if host is not None and not str(host).startswith(LOOPBACK):
        attempts.append(str(host))
        raise OSError(f"network access to {host} refused by the test")


def guard(original):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address[0])
        return original(self, address)

    return connect


socket.socket.connect = guard(socket.socket.connect)
socket.socket.connect_ex = guard(socket.socket.connect_ex)
_getaddrinfo = socket.getaddrinfo
socket.getaddrinfo = lambda host, *args, **kwargs: (check(host), _getaddrinfo(host, *args, **kwargs))[1]
atexit.register(lambda: open(sys.argv[1], "w").write(json.dumps(attempts)))

from cgd.train import main

main(sys.argv[2:])
"""


def test_cpu_recipes_report_to_trackio():
    assert CPU_RECIPES
    for recipe in CPU_RECIPES:
        assert yaml.safe_load(recipe.read_text())["report_to"] == "trackio", recipe.name


def env_for(tmp_path: Path) -> dict[str, str]:
    env = offline_subprocess_env(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        HF_HOME=str(tmp_path / "hf_home"),  # trackio's default store lives here: it must not be used
        TRACKIO_DIR=str(tmp_path / "trackio"),
    )
    for key in ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL", "TRACKIO_BUCKET_ID", "TRACKIO_DATASET_ID"):
        env.pop(key, None)
    return env


def trackio_metric(env: dict[str, str], project: str, run: str, metric: str) -> dict[int, float]:
    """One metric by trackio step, read from the local store by trackio's CLI (`trackio get metric ... --json`)."""
    cmd = [sys.executable, "-c", "from trackio.cli import main; main()", "get", "metric"]
    cmd += ["--project", project, "--run", run, "--metric", metric, "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {entry["step"]: entry["value"] for entry in json.loads(proc.stdout)["values"]}


def test_tracked_run_logs_the_loss_to_the_local_store_offline(tmp_path, tiny_checkpoint):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in make_triplet_rows(32)))
    (tmp_path / "guarded_train.py").write_text(GUARDED_TRAIN)
    attempts_file, output_dir = tmp_path / "network_attempts.json", tmp_path / "run"
    overrides = dict(
        model_name_or_path=tiny_checkpoint,
        dataset_name=data,
        output_dir=output_dir,
        max_steps=8,
        logging_steps=2,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        max_length=256,
        save_strategy="no",
        disable_tqdm="true",
        project="cgd-tests",
        run_name="tiny-tracked",
    )
    cmd = [sys.executable, str(tmp_path / "guarded_train.py"), str(attempts_file)]
    cmd += ["--config", str(REPO_ROOT / "recipes" / "smollm2-135m" / "cgd.yaml")]  # report_to: trackio
    cmd += [item for key, value in overrides.items() for item in (f"--{key}", str(value))]
    env = env_for(tmp_path)
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert json.loads(attempts_file.read_text()) == []  # nothing reached for the network

    assert (tmp_path / "trackio" / "cgd-tests.db").is_file()
    assert not (tmp_path / "hf_home" / "trackio").exists()
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    logged = [entry for entry in history if "loss" in entry]
    assert [entry["step"] for entry in logged] == [2, 4, 6, 8]
    losses = trackio_metric(env, "cgd-tests", "tiny-tracked", "train/loss")
    global_steps = trackio_metric(env, "cgd-tests", "tiny-tracked", "train/global_step")
    assert [global_steps[step] for step in sorted(losses)] == [2, 4, 6, 8]
    assert [losses[step] for step in sorted(losses)] == pytest.approx([entry["loss"] for entry in logged], rel=1e-6)
