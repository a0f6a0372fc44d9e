"""cgd.eval.runner: task specs, model args, and the comparison report built from lighteval results JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from cgd.eval.runner import build_model_args, expand_tasks, lighteval_command, model_label, write_report


def _fake_run(root: Path, model: str, results: dict[str, dict[str, float]], n: int = 4) -> Path:
    """A lighteval-shaped output folder: results/<model>/results_<stamp>.json + details parquet files."""
    stamp = "2026-01-01T00-00-00.000000"
    results_dir = root / "results" / model
    results_dir.mkdir(parents=True)
    payload = {
        "config_general": {"model_name": model},
        "results": {
            **{task: {**m, **{f"{k}_stderr": 0.01 for k in m}} for task, m in results.items()},
            "all": {"acc": 0.0},
        },
    }
    (results_dir / f"results_{stamp}.json").write_text(json.dumps(payload))
    details = root / "details" / model / stamp
    details.mkdir(parents=True)
    for task in results:
        pd.DataFrame({"metric": [{"acc": 1.0}] * n}).to_parquet(details / f"details_{task}_{stamp}.parquet")
    # An older results file must be ignored in favour of the newest.
    (results_dir / "results_2025-01-01T00-00-00.000000.json").write_text(json.dumps({"results": {}}))
    return root


def test_expand_tasks():
    assert expand_tasks("cgd_gsm8k, cgd_math500|0,ifeval") == ["cgd_gsm8k|0", "cgd_math500|0", "ifeval|0"]
    paper = expand_tasks(["paper_math"])
    assert paper[0] == "cgd_math500|0" and len(paper) == 5
    assert expand_tasks(["cgd_gsm8k", "cgd_gsm8k|0"]) == ["cgd_gsm8k|0"]
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "eval" / "paper_math.txt"
    assert expand_tasks([str(recipe)]) == paper


@pytest.mark.parametrize("name", ["llama31_8b", "qwen25_math_7b", "llama31_8b_sampled", "smollm2_cpu"])
def test_eval_recipes_parse_as_lighteval_model_configs(name):
    import yaml
    from lighteval.models.transformers.transformers_model import TransformersModelConfig

    path = Path(__file__).resolve().parents[1] / "recipes" / "eval" / f"{name}.yaml"
    config = TransformersModelConfig(**yaml.safe_load(path.read_text())["model_parameters"])
    assert config.generation_parameters.max_new_tokens


def test_vllm_serve_recipe_parses():
    from cgd.eval.compat import apply

    apply()
    from lighteval.models.endpoints.litellm_model import LiteLLMModelConfig

    path = Path(__file__).resolve().parents[1] / "recipes" / "eval" / "vllm_serve.yaml"
    config = LiteLLMModelConfig.from_path(str(path))
    assert config.model_name.startswith("openai/") and config.base_url.endswith("/v1")


def test_model_args_and_command(tmp_path):
    args = build_model_args("out/ckpt", device="cpu", batch_size=4, max_new_tokens=256, cache_dir=None)
    assert args == "model_name=out/ckpt,device=cpu,batch_size=4,generation_parameters={max_new_tokens:256}"
    fresh = [build_model_args("out/ckpt").rsplit("cache_dir=", 1)[1] for _ in range(2)]
    assert fresh[0] != fresh[1] and all(Path(d).is_dir() for d in fresh)  # never reuse stale generations
    api = build_model_args(
        "smol", backend="litellm", base_url="http://127.0.0.1:8000/v1", temperature=0.6, cache_dir=None
    )
    assert api.startswith("model_name=openai/smol,provider=openai,base_url=http://127.0.0.1:8000/v1")
    assert api.endswith("generation_parameters={temperature:0.6}")
    with pytest.raises(ValueError):
        build_model_args("m", backend="vllm")
    cmd = lighteval_command(args, ["cgd_gsm8k|0"], tmp_path, max_samples=3)
    assert cmd[1:4] == ["-m", "cgd.eval.cli", "accelerate"]
    assert "--save-details" in cmd and cmd[-2:] == ["--max-samples", "3"]
    assert lighteval_command(api, ["x|0"], tmp_path, backend="litellm")[3:5] == ["endpoint", "litellm"]
    assert model_label("outputs/runs/cgd-llama/") == "cgd-llama"


def test_write_report_compares_models(tmp_path):
    base = _fake_run(
        tmp_path / "base",
        "base",
        {
            "cgd_gsm8k|0": {"acc": 0.50, "critique_rate": 0.0, "boxed_rate": 0.9},
            "cgd_math500|0": {"acc": 0.20, "critique_rate": 0.0, "boxed_rate": 0.8},
        },
    )
    cft = _fake_run(
        tmp_path / "cft",
        "cft",
        {
            "cgd_gsm8k|0": {"acc": 0.45, "critique_rate": 0.30, "boxed_rate": 0.6},
            "cgd_math500|0": {"acc": 0.25, "critique_rate": 0.10, "boxed_rate": 0.7},
        },
    )
    report = write_report([base, cft], tmp_path / "report", labels=["base", "cft"])
    for path in (report.markdown, report.csv, report.png):
        assert path.is_file() and path.stat().st_size > 0
    assert report.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    frame = report.frame
    assert list(frame.columns) == ["base", "cft", "Δ cft"]
    assert frame.loc[("cgd_gsm8k", "acc"), "Δ cft"] == pytest.approx(-0.05)
    assert frame.loc[("cgd_gsm8k", "critique_rate"), "Δ cft"] == pytest.approx(0.30)
    assert frame.loc[("cgd_math500", "acc"), "cft"] == pytest.approx(0.25)

    csv = pd.read_csv(report.csv)
    assert {"task", "metric", "base", "cft", "Δ cft"} <= set(csv.columns)
    md = report.markdown.read_text()
    assert "| cgd_gsm8k | acc | 4 |  | 50.0 | 45.0 | -5.0 |" in md
    assert "| cgd_gsm8k | critique_rate | 4 |  | 0.0 | 30.0 | +30.0 |" in md


def test_write_report_needs_results(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_report([tmp_path], tmp_path / "out")


def test_math500_agreement_with_builtin_metric():
    from cgd.eval.runner import math500_agreement

    pairs = [
        ("So the answer is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("Thus \\boxed{0.5}", "\\frac{1}{2}"),
        ("Thus \\boxed{7}", "\\frac{1}{2}"),
        ("The answer is \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ]
    result = math500_agreement(pairs)
    assert result["n"] == 4
    assert result["ours_correct"] == 3 and result["builtin_correct"] == 3
    assert result["agree"] == 4 and not result["disagreements"]


def test_missing_result_is_missing_not_zero(tmp_path):
    """A task one model lacks is "missing" in the table and NaN (a labelled gap) in the chart, not 0%."""
    import math

    from cgd.eval.runner import chart_values, load_results

    base = _fake_run(tmp_path / "base", "base", {"cgd_gsm8k|0": {"acc": 0.5}, "cgd_math500|0": {"acc": 0.2}})
    cgd = _fake_run(tmp_path / "cgd", "cgd", {"cgd_gsm8k|0": {"acc": 0.6}})
    report = write_report([base, cgd], tmp_path / "report", labels=["base", "cgd"])
    assert "| cgd_math500 | acc | 4 |  | 20.0 | missing |  |" in report.markdown.read_text()
    long = load_results([base, cgd], ["base", "cgd"])
    values = chart_values(long, ["cgd_gsm8k", "cgd_math500"], ["base", "cgd"], None)
    assert values["cgd"][0] == pytest.approx(60.0) and math.isnan(values["cgd"][1])
    assert values["base"] == pytest.approx([50.0, 20.0])


def test_cli_is_one_dataclass_with_yaml_and_strict_keys(tmp_path):
    import yaml

    from cgd.eval.runner import EvalArguments, parse_args

    command, args = parse_args(["--models", "a", "b", "--tasks", "paper_math", "--first-n", "3", "--device", "cpu"])
    assert command == "run" and isinstance(args, EvalArguments)
    assert args.models == ["a", "b"] and args.first_n == 3 and args.max_new_tokens is None
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({"models": ["m"], "tasks": "cgd_gsm8k", "max_new_tokens": 128}))
    _, args = parse_args(["run", "--config", str(config), "--batch_size", "2"])
    assert args.models == ["m"] and args.max_new_tokens == 128 and args.batch_size == 2
    config.write_text(yaml.safe_dump({"models": ["m"], "tasks": "cgd_gsm8k", "max_new_token": 128}))
    with pytest.raises(ValueError, match="'max_new_token' \\(did you mean 'max_new_tokens'\\?\\)"):
        parse_args(["--config", str(config)])
    with pytest.raises(ValueError, match="did you mean 'first_n'"):
        parse_args(["--models", "a", "--tasks", "t", "--first", "3"])  # no abbreviations
    assert parse_args(["report", "--run_dirs", "x", "y"])[1].run_dirs == ["x", "y"]


def test_misspelled_task_fails_before_any_model_loads(tmp_path):
    from cgd.eval.runner import evaluate_models

    with pytest.raises(ValueError, match="did you mean 'cgd_math500'"):
        evaluate_models(["does/not/exist"], "cgd_gsm8k,cgd_mat500", tmp_path / "eval")
    assert not (tmp_path / "eval" / "runs").exists()  # nothing started


def test_paper_protocol_maps_tasks():
    from cgd.eval.runner import paper_protocol

    specs = expand_tasks("paper_math,cgd_theoremqa")
    assert paper_protocol(specs)[:2] == ["cgd_math500_paper|0", "cgd_minerva_math_paper|0"]
    assert paper_protocol(specs)[-1] == "cgd_theoremqa|0"  # no paper variant: kept


def test_lighteval_output_always_reaches_the_log_and_a_timeout_kills(tmp_path, capsys):
    """The run's output goes to runs/<label>.log whether or not it is also shown; a silent hang is killed."""
    import subprocess
    import sys

    from cgd.eval.runner import run_logged

    log = tmp_path / "run.log"
    code = "import sys; sys.stdout.write('progress\\r'); print('done'); sys.exit(3)"
    assert run_logged([sys.executable, "-c", code], log, env=dict(os.environ), echo=False) == 3
    assert log.read_bytes() == b"progress\rdone\n"
    assert "done" not in capsys.readouterr().out
    assert run_logged([sys.executable, "-c", code], log, env=dict(os.environ), echo=True) == 3
    assert "done" in capsys.readouterr().out and log.read_text().endswith("done\n")
    with pytest.raises(subprocess.TimeoutExpired):
        run_logged(
            [sys.executable, "-c", "import time; time.sleep(60)"], log, env=dict(os.environ), echo=False, timeout=1
        )
