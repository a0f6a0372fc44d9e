"""The main job: its arguments, what it skips, the held-out report's statistics and claims; (slow) the job itself."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from cgd.demo import report, run

REPO_ROOT = Path(__file__).resolve().parents[1]


# --- arguments ------------------------------------------------------------------------------------------


def test_arguments_defaults_study_and_strict_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = run.parse_arguments(run.DemoArguments, [], "cgd.demo").resolved()
    assert args.recipes == ["cgd"] and args.num_eval >= 100
    assert Path(args.workdir) == tmp_path / "outputs" / "demo"
    assert Path(args.builder_config).is_file() and Path(args.accelerate_config).is_file()
    study = run.parse_arguments(run.DemoArguments, ["--study", "true"], "cgd.demo").resolved()
    assert study.recipes == run.STUDY_RECIPES
    for recipe in study.recipes:  # every study recipe ships
        assert (Path(study.recipe_dir) / f"{recipe}.yaml").is_file(), recipe
    (tmp_path / "demo.yaml").write_text("num_eval: 120\nrecipes: [cgd, sft]\n")
    from_yaml = run.parse_arguments(run.DemoArguments, ["--config", "demo.yaml", "--seed", "3"], "cgd.demo")
    assert (from_yaml.num_eval, from_yaml.recipes, from_yaml.seed) == (120, ["cgd", "sft"], 3)
    with pytest.raises(SystemExit, match="'num_evals' \\(did you mean 'num_eval'\\?\\)"):
        run.parse_arguments(run.DemoArguments, ["--num_evals", "5"], "cgd.demo")
    with pytest.raises(SystemExit, match="unknown key"):  # an abbreviation is not a key
        run.parse_arguments(run.DemoArguments, ["--num_ev", "5"], "cgd.demo")
    (tmp_path / "bad.yaml").write_text("num_trian: 5\n")
    with pytest.raises(SystemExit, match="did you mean 'num_train'"):
        run.parse_arguments(run.DemoArguments, ["--config", "bad.yaml"], "cgd.demo")


def test_other_settings_are_refused_in_a_used_workdir(tmp_path):
    args = run.DemoArguments(workdir=str(tmp_path)).resolved()
    run.check_settings(args, tmp_path / "settings.json")
    run.check_settings(args, tmp_path / "settings.json")  # same settings: fine
    study = run.DemoArguments(workdir=str(tmp_path), study=True).resolved()
    run.check_settings(study, tmp_path / "settings.json")  # more recipes add results, they change none
    with pytest.raises(SystemExit, match="num_train: 64 then, 8 now"):
        run.check_settings(
            run.DemoArguments(workdir=str(tmp_path), num_train=8).resolved(), tmp_path / "settings.json"
        )


def test_finished_steps_are_skipped_with_their_recorded_cost(tmp_path):
    timings = run.Timings(tmp_path / "timings.json")
    ran = []
    timings.step("build", False, ran.append, "build")
    again = run.Timings(tmp_path / "timings.json")
    again.step("build", True, ran.append, "build again")
    assert ran == ["build"]
    assert again.rows[0]["status"] == "reused" and again.rows[0]["seconds"] == timings.rows[0]["seconds"]
    model = tmp_path / "m"
    assert not run.model_done(model)
    model.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (model / name).write_text("{}")
    assert run.model_done(model)


def _fake_details(folder: Path, acc: float) -> None:
    import pandas as pd

    target = folder / "runs" / "x" / "details" / "m" / "stamp"
    target.mkdir(parents=True)
    metrics = {"acc": acc, "boxed_rate": 1.0, "critique_rate": 0.0, "verdict_rate": 0.0}
    frame = pd.DataFrame({"doc": [{"query": f"q{i}"} for i in range(4)], "metric": [metrics] * 4,
                          "model_response": [{"truncated_tokens_count": 0}] * 4})  # fmt: skip
    frame.to_parquet(target / "details_cgd_arith|0_stamp.parquet")


def test_the_script_skips_finished_steps_and_reports_a_failed_one_as_missing(tmp_path, monkeypatch):
    calls: list[str] = []

    def build(args, model, questions_file, dataset, logs):
        calls.append("build")
        (dataset / "data").mkdir(parents=True)
        (dataset / "README.md").write_text("card")
        (dataset / "data" / "train-00000.parquet").write_text("x")

    def train(args, recipe, model, dataset, out, logs):
        calls.append(f"train_{recipe}")
        if recipe == "sft":
            raise RuntimeError("exit code 1")
        out.mkdir(parents=True)
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            (out / name).write_text("{}")

    def evaluate(args, name, model, eval_root, out):
        calls.append(f"eval_{name}")
        _fake_details(out, 1.0 if name == "cgd" else 0.0)

    monkeypatch.setattr(run, "build", build)
    monkeypatch.setattr(run, "train", train)
    monkeypatch.setattr(run, "evaluate", evaluate)
    argv = ["--workdir", str(tmp_path / "w"), "--model", str(tmp_path), "--num_train", "4", "--num_eval", "4",
            "--num_bootstrap", "100", "--recipes", "cgd", "sft"]  # fmt: skip
    with pytest.raises(SystemExit, match="train_sft: exit code 1"):
        run.main(argv)
    assert calls == ["build", "train_cgd", "train_sft", "eval_base", "eval_cgd"]
    md = (tmp_path / "w" / "report.md").read_text()
    assert "| sft | missing |" in md and "accuracy 0% → 100%" in md
    assert (tmp_path / "w" / "questions" / "train.jsonl").is_file()
    calls.clear()
    with pytest.raises(SystemExit):
        run.main(argv)
    assert calls == ["train_sft"], "finished steps are skipped; only the failed one runs again"


# --- statistics -----------------------------------------------------------------------------------------


def test_rates_carry_wilson_intervals():
    r = report.rate([1.0] * 50 + [0.0] * 50)
    assert r.value == 0.5 and r.low == pytest.approx(0.4038, abs=1e-4) and r.high == pytest.approx(0.5962, abs=1e-4)
    zero = report.rate([0.0] * 100)
    assert zero.low == 0 and zero.high == pytest.approx(0.0370, abs=1e-4)
    assert math.isnan(report.rate([]).low)


def test_paired_bootstrap_uses_the_pairing():
    rng = random.Random(0)
    a = [float(rng.random() < 0.5) for _ in range(200)]
    same = report.paired_difference(a, a)
    assert same.value == 0 and same.low == 0 and same.high == 0  # identical answers: no uncertainty at all
    flipped = [1.0 if i < 20 and x == 0 else x for i, x in enumerate(a)]
    gain = sum(f - x for f, x in zip(flipped, a)) / 200
    d = report.paired_difference(a, flipped, seed=1)
    assert d.value == pytest.approx(gain) and 0 < d.low <= d.value <= d.high
    # An unpaired view of the same two rates would not exclude 0: the pairing is what makes it measurable.
    assert report.rate(flipped).low < report.rate(a).high


def _model(name: str, rates: dict[str, float], n: int = 100, seed: int = 0) -> report.ModelScores:
    rng = random.Random(f"{name}-{seed}")
    per = {}
    for i in range(n):
        per[f"q{i}"] = {m: float(rng.random() < rates.get(m, 0.0)) for m in report.METRICS}
    return report.ModelScores(name, per, prompts_cut=0)


def test_what_changed_says_what_moved_and_what_did_not():
    base = _model("base", {"acc": 0.05, "boxed_rate": 0.0})
    cgd = _model("cgd", {"acc": 0.05, "boxed_rate": 0.9})
    text = report.what_changed(base, cgd)
    assert text.startswith("On the same 100 held-out questions, cgd vs base: boxed-answer rate 0% → ")
    assert "no measurable change in accuracy" in text
    same = report.what_changed(base, _model("cgd", {"acc": 0.05}))
    assert "no metric changed measurably" in same
    missing = report.what_changed(base, report.ModelScores("cgd", None))
    assert "missing" in missing


def test_claim_lines_follow_the_numbers():
    models = {
        "base": _model("base", {"acc": 0.05}),
        "cgd": _model("cgd", {"acc": 0.6, "boxed_rate": 0.9}),
        "cft": _model("cft", {"acc": 0.0, "critique_rate": 0.8, "verdict_rate": 0.7}),
        "sft": _model("sft", {"acc": 0.6, "boxed_rate": 0.9}, seed=1),
        "distilled_sft": _model("distilled_sft", {"acc": 0.1}),
        "cgd_generic_critique": report.ModelScores("cgd_generic_critique", None),
    }
    lines = {c["claim"]: c for c in report.claim_lines(models)}
    assert lines["CFT drifts towards critique-style outputs and CGD does not"]["verdict"] == "holds"
    assert lines["CGD is more accurate than distilled SFT"]["verdict"] == "holds"
    assert lines["CGD is more accurate than SFT"]["verdict"] == "not shown at this scale"
    assert "missing" in lines["a specific critique beats a generic one"]["verdict"]
    flipped = {**models, "cft": _model("cft", {"acc": 0.05}), "cgd": _model("cgd", {"acc": 0.0, "critique_rate": 0.9})}
    lines = {c["claim"]: c for c in report.claim_lines(flipped)}
    assert lines["CFT drifts towards critique-style outputs and CGD does not"]["verdict"] == "not shown at this scale"
    assert lines["CGD is more accurate than distilled SFT"]["verdict"] == "does not hold (the opposite)"


def test_report_files_with_intervals_and_a_visibly_missing_model(tmp_path):
    models = [
        _model("base", {"acc": 0.05}),
        _model("cgd", {"acc": 0.2, "boxed_rate": 0.9}),
        _model("cft", {"critique_rate": 0.8}),
        report.ModelScores("sft", None, note="no details"),
    ]
    timings = [{"phase": "build", "status": "ran", "seconds": 12.0, "cpu_seconds": 20.0}]
    payload = report.write(models, tmp_path, "test", timings, num_bootstrap=200)
    md = (tmp_path / "report.md").read_text()
    assert "**What changed.** On the same 100 held-out questions, cgd vs base" in md
    assert "| sft | missing |" in md and "| build | ran | 12 | 20 |" in md
    assert "## The paper's claims at this scale" in md and "CFT drifts" in md
    row = next(r for r in payload["scores"] if r["model"] == "cgd")
    assert row["boxed_rate"]["low"] < row["boxed_rate"]["value"] < row["boxed_rate"]["high"]
    assert json.loads((tmp_path / "report.json").read_text())["claims"] == payload["claims"]
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_details_are_read_per_question_with_cut_prompts_counted(tmp_path):
    import pandas as pd

    folder = tmp_path / "details" / "m" / "2026-01-01"
    folder.mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "doc": [{"query": "q1"}, {"query": "q2"}],
            "metric": [
                {"acc": 1.0, "boxed_rate": 1.0, "critique_rate": 0.0, "verdict_rate": 0.0},
                {"acc": 0.0, "boxed_rate": 0.0, "critique_rate": 1.0, "verdict_rate": 1.0},
            ],
            "model_response": [{"truncated_tokens_count": 0}, {"truncated_tokens_count": 7}],
        }
    )
    frame.to_parquet(folder / "details_cgd_arith|0_2026-01-01.parquet")
    scores, cut = report.load_details(tmp_path)
    assert scores == {
        "q1": {"acc": 1.0, "boxed_rate": 1.0, "critique_rate": 0.0, "verdict_rate": 0.0},
        "q2": {"acc": 0.0, "boxed_rate": 0.0, "critique_rate": 1.0, "verdict_rate": 1.0},
    }
    assert cut == 1
    assert run.scores("x", tmp_path / "nothing").missing


# --- the job itself -------------------------------------------------------------------------------------

SMALL_STUDY = [
    "--num_train", "8", "--num_eval", "6", "--eval_max_new_tokens", "48", "--study", "true",
    "--recipes", "cgd", "cft", "sft", "cgd_generic_critique",
    "--builder_args", "--probe_max_tokens 32 --batch_size 8",
    "--train_args", "--max_steps 2 --per_device_train_batch_size 4 --gradient_accumulation_steps 1 --report_to none",
]  # fmt: skip


@pytest.mark.slow
def test_the_study_end_to_end_at_a_small_size(tmp_path):
    """The real thing, reduced: embedded model, 8 built rows, 6 held-out questions, 2 training steps per recipe."""
    import datasets

    from cgd.demo import embedded

    try:
        embedded.convert(REPO_ROOT / embedded.DEFAULT_CACHE_DIR)
    except RuntimeError as err:
        pytest.skip(f"embedded model unavailable: {err}")
    workdir = tmp_path / "demo"
    payload = run.main(["--workdir", str(workdir), *SMALL_STUDY])
    rows = datasets.load_dataset(str(workdir / "dataset"), split="train")
    assert len(rows) == 8 and set(rows["teacher_model"]) == {"rule-based-reference-teacher"}
    assert set(rows["verdict"]) <= {"right", "wrong"}

    scores = {r["model"]: r for r in payload["scores"]}
    assert set(scores) == {"base", "cgd", "cft", "sft", "cgd_generic_critique"}
    for row in scores.values():
        assert not row["missing"] and row["n"] == 6 and row["prompts_cut"] == 0
        for metric in report.METRICS:
            interval = row[metric]
            assert 0 <= interval["low"] <= interval["value"] <= interval["high"] <= 1
    claims = {c["claim"]: c["verdict"] for c in payload["claims"]}
    assert {
        "CFT drifts towards critique-style outputs and CGD does not",
        "CGD is more accurate than SFT",
        "a specific critique beats a generic one",
    } <= set(claims)
    md = (workdir / "report.md").read_text()
    assert "**What changed.** On the same 6 held-out questions, cgd vs base" in md and "95% CI" in md
    assert {t["phase"] for t in payload["timings"]} >= {"build", "train_cgd", "eval_base", "eval_cgd"}

    # Rerunning reuses every finished step; other settings in the same workdir are refused.
    again = run.main(["--workdir", str(workdir), *SMALL_STUDY])
    assert {t["status"] for t in again["timings"] if t["phase"] != "total"} == {"reused"}
    with pytest.raises(SystemExit, match="other settings"):
        run.main(["--workdir", str(workdir), *SMALL_STUDY, "--seed", "1"])
