"""Bad inputs to the builder: each is one clear line naming the file, line or key, raised before any request.

Also: nothing published carries a local path, the final write is atomic, and a torn run log does not break reruns.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cgd import schema
from datasets_builders import config as cfg
from datasets_builders.build_cgd import Builder, main


@pytest.fixture()
def questions(tmp_path) -> Path:
    path = tmp_path / "questions.jsonl"
    rows = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(10)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _args(source, out, *extra):
    return [
        "--source", str(source), "--student_model", "stu", "--teacher_model", "tea", "--backend", "dry_run",
        "--output_dir", str(out), "--progress", "false", *extra,
    ]  # fmt: skip


def _one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and not any("Traceback" in line for line in lines), lines
    return errors[0]


# -- settings: parse time, one line -------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("rows_per_file", "0", "`rows_per_file` must be >= 1 (got 0)"),  # used to write 0 of 10 rows
        ("rows_per_file", "-7", "`rows_per_file` must be >= 1"),  # used to write 3 of 10 rows
        ("num_samples", "0", "`num_samples` must be >= 1"),
        ("max_concurrency", "0", "`max_concurrency` must be >= 1"),
        ("max_retries", "-1", "`max_retries` must be >= 0"),
        ("request_timeout", "0", "`request_timeout` must be > 0"),
        ("probe_temperature", "-0.5", "`probe_temperature` must be >= 0"),
        ("critique_temperature", "nan", "`critique_temperature` must be >= 0"),
        ("refine_top_p", "0", "`refine_top_p` must be > 0 and <= 1"),
        ("critique_top_p", "1.5", "`critique_top_p` must be > 0 and <= 1"),
        ("probe_max_tokens", "0", "`probe_max_tokens` must be >= 1 (got 0)"),
        ("direct_n", "0", "`direct_n` must be >= 1"),
        ("batch_size", "0", "`batch_size` must be >= 1"),
        ("gpu_memory_utilization", "1.5", "`gpu_memory_utilization` must be > 0 and <= 1"),
        ("fsync_interval_s", "-1", "`fsync_interval_s` must be >= 0"),
        ("teacher_output_price", "-2", "`teacher_output_price` must be >= 0"),
        ("verdict_mix", "1.5", "`verdict_mix` must be >= 0 and <= 1"),
    ],
)
def test_numeric_settings_are_checked_at_parse_time(questions, tmp_path, key, value, message):
    with pytest.raises(cfg.ConfigError, match="Command line: " + message.replace("(", r"\(").replace(")", r"\)")):
        cfg.parse_args(_args(questions, tmp_path / "out", f"--{key}", value))


def _recipe(tmp_path, text: str) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text("source: q.jsonl\nstudent_model: s\nteacher_model: t\nbackend: dry_run\n" + text)
    return str(path)


@pytest.mark.parametrize(
    "text,message",
    [
        ("num_samples: [1, 2]\n", r"recipe\.yaml: `num_samples` must be int \| null \(got \[1, 2\]\)"),
        ("dedupe: 3\n", r"recipe\.yaml: `dedupe` must be bool \(got 3\)"),
        ("probe_temperature: hot\n", r"recipe\.yaml: argument --probe_temperature.*invalid float value: 'hot'"),
        ("data_files: [1, 2]\n", r"`data_files` must be"),
        ("seed: [1\nnum_samples: 2\n", r"recipe\.yaml, line 6 column 12: YAML syntax error"),
        (
            "seed: !!python/object/apply:os.system ['echo pwned']\n",
            r"recipe\.yaml, line 5: the tag .*python.* not allowed",
        ),
        ("- just\n- a list\n", r"recipe\.yaml, line 5 column 1: YAML syntax error"),
    ],
)
def test_recipe_errors_name_the_file_and_line(tmp_path, text, message):
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.parse_args(["--config", _recipe(tmp_path, text)])


def test_a_missing_recipe_and_a_list_recipe_are_one_line(tmp_path):
    with pytest.raises(cfg.ConfigError, match=r"Recipe .*nope\.yaml does not exist"):
        cfg.parse_args(["--config", str(tmp_path / "nope.yaml")])
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(cfg.ConfigError, match="must be a YAML mapping"):
        cfg.parse_args(["--config", str(tmp_path / "list.yaml")])


def test_abbreviations_and_unknown_keys_are_refused_like_training(questions, tmp_path, capsys):
    with pytest.raises(cfg.ConfigError, match=r"unknown key\(s\) `num_sample` \(did you mean `num_samples`\?\)"):
        cfg.parse_args(_args(questions, tmp_path / "out", "--num_sample", "3"))  # argparse took it for num_samples
    with pytest.raises(cfg.ConfigError, match=r"^Command line: `rows_per_file` must be >= 1"):  # dashed alias
        cfg.parse_args(_args(questions, tmp_path / "out", "--rows-per-file", "0"))
    assert main(_args(questions, tmp_path / "out", "--temprature", "0.5")) == 2
    assert "Command line: unknown key(s) `temprature` (did you mean `probe_temperature`?)" in _one_error_line(capsys)


def test_secret_values_are_never_printed(tmp_path, questions, capsys):
    secret = "sk-live-abcdef0123456789"
    assert main(["--config", _recipe(tmp_path, f"api_key: {secret}\n")]) == 2
    line = _one_error_line(capsys)
    assert "`api_key` (did you mean `api_key_env`?)" in line and secret not in line
    assert main(_args(questions, tmp_path / "out", "--api_key_env", secret)) == 2
    line = _one_error_line(capsys)
    assert "NAME of the environment variable" in line and secret not in line
    assert main(_args(questions, tmp_path / "out", "--base_url", f"ftp://u:{secret}@host/v1")) == 2
    line = _one_error_line(capsys)
    assert "is not an http(s) URL" in line and secret not in line and "u:***@host" in line


def test_push_target_is_checked_before_any_work(questions, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    with pytest.raises(cfg.ConfigError, match="not a Hub repo id"):
        cfg.parse_args(_args(questions, out, "--push_to_hub", "not a repo!!"))
    with pytest.raises(cfg.ConfigError, match="needs an owner"):
        cfg.parse_args(_args(questions, out, "--push_to_hub", "name-only"))
    with pytest.raises(cfg.ConfigError, match="`push_to_hub_revision` needs `push_to_hub`"):
        cfg.parse_args(_args(questions, out, "--push_to_hub_revision", "v1"))
    assert main(_args(questions, out, "--push_to_hub", "org/cgd")) == 1  # offline (the tests' environment)
    assert "the Hub is offline (HF_HUB_OFFLINE=1)" in _one_error_line(capsys)
    assert not (out / "checkpoints").exists()  # nothing was generated
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored token either
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    assert main(_args(questions, out, "--push_to_hub", "org/cgd")) == 1
    assert "no Hugging Face token" in _one_error_line(capsys) and not (out / "checkpoints").exists()


def test_push_to_a_revision_of_a_private_repo(questions, tmp_path, fake_hub_api, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    monkeypatch.setattr(huggingface_hub.HfApi, "whoami", lambda self: {"name": "me", "orgs": []}, raising=False)
    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "create_branch",
        lambda self, repo_id, **kw: fake_hub_api.append(("create_branch", repo_id, kw)),
        raising=False,
    )
    out = tmp_path / "out"
    with pytest.raises(Exception, match="cannot create repos under 'org'"):  # the token's user is `me`
        Builder(cfg.parse_args(_args(questions, out, "--push_to_hub", "org/cgd"))).run()
    assert not (out / "checkpoints").exists()
    args = _args(questions, out, "--push_to_hub", "me/cgd", "--push_to_hub_revision", "v2", "--private", "true")
    report = Builder(cfg.parse_args(args)).run()
    assert fake_hub_api[0] == ("create_repo", "me/cgd", {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert fake_hub_api[1] == ("create_branch", "me/cgd", {"branch": "v2", "repo_type": "dataset", "exist_ok": True})
    assert fake_hub_api[2][1]["revision"] == "v2" and report["output"]["hub_url"].endswith("me/cgd/tree/v2")


# -- sources: one line naming the file and line --------------------------------------------------------


@pytest.mark.parametrize(
    "content,message",
    [
        (b'{"question": "fine"}\n{"question": "bad \xff\xfe"}\n', r"q\.jsonl, line 2: not valid UTF-8"),
        (b'{"question": "fine"}\n{"question": "cut', r"q\.jsonl, line 2 \(the last line\) is cut off"),
        (b'{"question": "fine"}\nnot json\n{"question": "x"}\n', r"q\.jsonl, line 2: not valid JSON"),
        (b'{"question": "fine"}\n[1, 2]\n', r"q\.jsonl, line 2: a JSON list, not an object"),
    ],
)
def test_unreadable_source_lines_are_named(tmp_path, capsys, content, message):
    source = tmp_path / "q.jsonl"
    source.write_bytes(content)
    assert main(_args(source, tmp_path / "out")) == 1
    line = _one_error_line(capsys)
    assert __import__("re").search(message, line), line
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_missing_sources_and_offline_hub_ids_fail_at_once(tmp_path, capsys):
    assert main(_args(tmp_path / "nope.jsonl", tmp_path / "out")) == 1
    assert "nope.jsonl does not exist" in _one_error_line(capsys)
    assert main(_args("./no_such_dir/", tmp_path / "out")) == 1
    assert "no_such_dir/ does not exist" in _one_error_line(capsys)
    assert main(_args("json", tmp_path / "out", "--data_files", str(tmp_path / "gone.jsonl"))) == 1
    assert "Data file" in _one_error_line(capsys)
    start = time.perf_counter()
    assert main(_args("some-org/not-cached-dataset", tmp_path / "out")) == 1
    line = _one_error_line(capsys)
    assert "is a Hub dataset and the Hub is offline" in line and "--source path/to/questions.jsonl" in line
    assert time.perf_counter() - start < 30


def test_the_readme_build_command_offline_is_one_line(tmp_path, capsys):
    """The CPU demo recipe, offline and before its files exist, stops at once with one line; so does a Hub preset."""
    args = ["--config", "recipes/builders/smollm2_demo.yaml", "--output_dir", str(tmp_path / "out")]
    start = time.perf_counter()
    assert main([*args, "--source", str(tmp_path / "questions.jsonl")]) in (1, 2)
    line = _one_error_line(capsys)
    assert "does not exist" in line and time.perf_counter() - start < 30
    model = tmp_path / "SmolLM2-135M-Instruct"
    model.mkdir()
    preset = ["--source_preset", "gsm8k", "--student_model", str(model), "--teacher_model", str(model)]
    assert main(["--backend", "transformers", "--output_dir", str(tmp_path / "out2"), *preset]) == 1
    line = _one_error_line(capsys)
    assert (
        "'openai/gsm8k' is a Hub dataset and the Hub is offline" in line and "--source path/to/questions.jsonl" in line
    )


def test_duplicate_ids_with_different_questions_and_id_column_null(tmp_path, capsys):
    source = tmp_path / "dup.jsonl"
    rows = [
        {"id": "a", "question": "What is 1?"},
        {"id": "a", "question": "What is 2?"},
        {"id": "b", "question": "3?"},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(_args(source, tmp_path / "out")) == 1
    line = _one_error_line(capsys)
    assert "id 'a' (column 'id') is used by rows 0 and 1 with different questions" in line
    assert "`id_column: null`" in line
    report = Builder(cfg.parse_args(_args(source, tmp_path / "out2", "--id_column", "null"))).run()
    assert report["output"]["rows"] == 3 and report["source"]["rows_selected"] == 3
    ids = {r[schema.SOURCE_ID] for r in __import__("datasets").load_dataset(str(tmp_path / "out2"), split="train")}
    assert ids == {"0", "1", "2"}  # row numbers, not the repeated id column


def test_a_list_as_reference_answer_is_reported_malformed(tmp_path):
    source = tmp_path / "q.jsonl"
    rows = [
        {"id": "a", "question": "Q1?", "answer": [1, 2]},
        {"id": "b", "question": "Q2?", "answer": "3"},
        {"id": "c", "question": "Q3?", "answer": 4},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    questions, report = Builder(cfg.parse_args(_args(source, tmp_path / "out"))).questions()
    assert [m for m in report.malformed] == [
        {"source_id": "a", "reason": "reference answer is list, not text or a number"}
    ]
    assert sorted(q.reference_answer for q in questions) == ["3", "4"]


# -- output folder ------------------------------------------------------------------------------------


def test_output_dir_problems_fail_before_any_request(questions, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(_args(questions, tmp_path / "afile" / "out")) == 1
    assert "Cannot create output_dir" in _one_error_line(capsys)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "data").write_text("not a folder")
    assert main(_args(questions, out)) == 1
    assert "data is a file, but the builder writes a folder there" in _one_error_line(capsys)
    assert not (out / "checkpoints").exists()


def test_the_final_write_is_atomic(questions, tmp_path, monkeypatch):
    """A kill while the parquet files are written leaves the previous complete dataset (or none), never a part."""
    import datasets

    out = tmp_path / tmp_path.name
    args = _args(questions, out, "--rows_per_file", "3")
    Builder(cfg.parse_args(args)).run()
    before = datasets.load_dataset(str(out), split="train").to_list()
    assert len(before) == 10
    original, calls = datasets.Dataset.to_parquet, []

    def dies_on_the_second_file(self, path, *a, **kw):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")  # what a kill leaves: one file written, the rest not
        return original(self, path, *a, **kw)

    monkeypatch.setattr(datasets.Dataset, "to_parquet", dies_on_the_second_file)
    with pytest.raises(KeyboardInterrupt):
        Builder(cfg.parse_args([*args, "--rows_per_file", "2"])).run()
    monkeypatch.setattr(datasets.Dataset, "to_parquet", original)
    assert datasets.load_dataset(str(out), split="train").to_list() == before  # the old dataset, whole
    assert sorted(p.name for p in (out / "data").iterdir()) == [f"train-0000{i}-of-00004.parquet" for i in range(4)]
    fresh = tmp_path / "fresh"
    calls.clear()
    monkeypatch.setattr(datasets.Dataset, "to_parquet", dies_on_the_second_file)
    with pytest.raises(KeyboardInterrupt):
        Builder(cfg.parse_args(_args(questions, fresh, "--rows_per_file", "3"))).run()
    assert not (fresh / "data").exists() and not (fresh / "README.md").exists()
    monkeypatch.setattr(datasets.Dataset, "to_parquet", original)
    report = Builder(cfg.parse_args(_args(questions, fresh, "--rows_per_file", "3"))).run()  # the rerun finishes
    assert report["output"]["rows"] == 10 and not list(fresh.glob(".staging-*"))


def test_a_torn_run_log_does_not_break_later_runs(questions, tmp_path):
    out = tmp_path / tmp_path.name
    Builder(cfg.parse_args(_args(questions, out))).run()
    log = out / "checkpoints" / "shard-00000-of-00001" / "runs.jsonl"
    with open(log, "ab") as f:
        f.write(b'{"time": 1, "name": "pro')  # killed inside the write
    (out / "checkpoints" / "shard-00000-of-00001" / "refine.jsonl").unlink()
    report = Builder(cfg.parse_args(_args(questions, out))).run()
    assert report["stages"]["refine"]["rows"] == 10
    lines = log.read_bytes().splitlines()
    assert all(json.loads(line) for line in lines) and log.read_bytes().endswith(b"\n")
    assert report["stages"]["refine"]["finished_runs"] == 2


def test_nothing_published_carries_a_local_path(questions, tmp_path):
    model = tmp_path / "models" / "my-student"
    model.mkdir(parents=True)
    out = tmp_path / tmp_path.name
    args = _args(questions.resolve(), out, "--student_model", str(model), "--teacher_model", str(model.resolve()))
    report = Builder(cfg.parse_args(args)).run()
    published = [out / "README.md", out / "build_report.json", out / "build_report.md", *(out / "data").iterdir()]
    for path in published:
        assert str(tmp_path).encode() not in path.read_bytes(), path
    rows = __import__("datasets").load_dataset(str(out), split="train").to_list()
    assert {r[schema.SOURCE] for r in rows} == {"questions.jsonl"}
    assert {r[schema.STUDENT_MODEL] for r in rows} == {"my-student"} == {r[schema.TEACHER_MODEL] for r in rows}
    assert report["output"]["path"] == out.name and report["stages"]["probe"]["model"] == "my-student"


def test_a_resume_says_how_many_rows_were_skipped(questions, tmp_path, caplog):
    import logging

    out = tmp_path / tmp_path.name
    Builder(cfg.parse_args(_args(questions, out))).run()
    critique = out / "checkpoints" / "shard-00000-of-00001" / "critique.jsonl"
    critique.write_text("".join(critique.read_text().splitlines(keepends=True)[:4]))
    with caplog.at_level(logging.INFO, logger="cgd.builders"):
        Builder(cfg.parse_args(_args(questions, out))).run()
    assert "probe: 10 of 10 rows already done" in caplog.text
    assert "critique: 4 of 10 rows already done (in critique.jsonl), skipped; 6 to generate" in caplog.text


# -- the dataset card, read back by huggingface_hub ---------------------------------------------------


def test_dataset_card_metadata_parses_with_huggingface_hub(questions, tmp_path):
    from huggingface_hub import DatasetCard
    from huggingface_hub.repocard_data import DatasetCardData

    out = tmp_path / tmp_path.name
    Builder(cfg.parse_args(_args(questions, out, "--license", "apache-2.0", "--dataset_name", "CGD test set"))).run()
    card = DatasetCard.load(out / "README.md")  # huggingface_hub's own parser of the YAML header
    assert isinstance(card.data, DatasetCardData)
    meta = card.data.to_dict()
    assert meta["license"] == "apache-2.0" and meta["pretty_name"] == "CGD test set"
    assert "arxiv:2505.11628" in meta["tags"] and meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"] and "source_datasets" not in meta  # a local file is no Hub source
    assert [c["config_name"] for c in meta["configs"]] == ["default", *schema.METHODS]
    assert meta["dataset_info"]["splits"][0]["num_examples"] == 10
    assert "huggingface.co/papers/2505.11628" in card.text and "@article{" in card.text
    from datasets_builders.card import card_data

    assert card_data(None, source="TIGER-Lab/WebInstructSub", num_rows=100_000).to_dict()["source_datasets"] == [
        "TIGER-Lab/WebInstructSub"
    ]


# -- experiment tracking --------------------------------------------------------------------------------


def test_report_to_trackio_logs_the_build_to_the_local_store(questions, tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    import trackio.utils

    monkeypatch.setattr(trackio.utils, "TRACKIO_DIR", tmp_path / "trackio", raising=False)
    with pytest.raises(cfg.ConfigError, match="`report_to` must be trackio or none"):
        cfg.parse_args(_args(questions, tmp_path / "x", "--report_to", "tensorboard"))
    out = tmp_path / tmp_path.name
    args = _args(questions, out, "--report_to", "trackio", "--project", "cgd-build-tests", "--run_name", "dry")
    report = Builder(cfg.parse_args(args)).run()
    cmd = [sys.executable, "-c", "from trackio.cli import main; main()", "get", "metric"]
    env = {**__import__("os").environ, "TRACKIO_DIR": str(tmp_path / "trackio")}
    for metric, expected in [
        ("output/rows", report["output"]["rows"]),
        ("probe/rows", 10),
        ("verdicts_before_filters/right", report["verdicts"]["before"]["right"]),
        ("teacher/verdict_accuracy", report["teacher_quality"]["generated"]["verdict_accuracy"]["rate"]),
    ]:
        proc = subprocess.run(
            [*cmd, "--project", "cgd-build-tests", "--run", "dry", "--metric", metric, "--json"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        values = [entry["value"] for entry in json.loads(proc.stdout)["values"]]
        assert values == [pytest.approx(expected)], metric
