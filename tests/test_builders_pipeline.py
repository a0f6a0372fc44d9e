"""End-to-end builds in process: the Hub folder, the training views through the collator, shards and merge."""

from __future__ import annotations

import json

import pytest

from cgd import schema
from datasets_builders.build_cgd import Builder, MergeError, main
from datasets_builders.config import parse_args


@pytest.fixture()
def questions_file(tmp_path):
    path = tmp_path / "questions.jsonl"
    rows = [
        {"id": f"q{i}", "question": f"What is {i} plus {i + 1}?", "answer": f"#### {2 * i + 1}"} for i in range(20)
    ]
    rows += [{"id": "empty", "question": "", "answer": "0"}, {"id": "none", "question": None, "answer": "0"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _args(questions_file, out, *extra):
    return [
        "--source", str(questions_file), "--id_column", "id", "--student_model", "stu", "--teacher_model", "tea",
        "--backend", "dry_run", "--output_dir", str(out), "--progress", "false", *extra,
    ]  # fmt: skip


def _rows(folder):
    import datasets

    return datasets.load_dataset(str(folder), split="train").to_list()


def test_build_folder_loads_back_and_encodes_for_every_method(questions_file, tmp_path, tiny_tokenizer):
    import pyarrow.parquet as pq

    out = tmp_path / tmp_path.name  # a unique folder name: datasets caches local loads by it
    report = Builder(parse_args(_args(questions_file, out, "--direct_enabled", "true", "--rows_per_file", "8"))).run()
    assert report["source"]["malformed"] == 2
    assert {m["source_id"] for m in report["source"]["malformed_rows"]} == {"empty", "none"}
    assert report["output"]["rows"] == 20 and report["output"]["files"] == [
        f"data/train-0000{i}-of-00003.parquet" for i in range(3)
    ]
    written = [r for f in report["output"]["files"] for r in pq.read_table(out / f).to_pylist()]
    rows = _rows(out)
    assert rows == written  # the default config reads back exactly what was written
    assert list(rows[0]) == list(schema.ALL_COLUMNS)
    assert all(r[schema.VERDICT] in ("right", "wrong") and r[schema.TEACHER_ANSWER] for r in rows)
    assert {r[schema.REFERENCE_ANSWER] for r in rows} >= {"#### 1"}
    card = (out / "README.md").read_text()
    assert (
        "config_name: cgd_no_critique" in card
        and "Conclusion: right" in card
        and "| critique | `tea` | dry_run |" in card
    )
    assert json.loads((out / "build_report.json").read_text())["stages"]["probe"]["rows"] == 20

    import datasets

    for method in schema.METHODS:
        view = datasets.load_dataset(str(out), method, split="train")
        assert set(schema.required_columns(method)) <= set(view.column_names)
    from cgd import collator, data

    loaded = data.load_triplets(str(out))
    for method in schema.METHODS:
        _, validation = data.validate_triplets(loaded, method)
        assert validation.rows_out == 20, (method, validation.summary())
        encoder = collator.CGDEncoder(tiny_tokenizer, method=method, max_length=None)
        for row in rows[:3]:
            encoded = encoder.encode(row)
            assert encoded is not None and any(label != -100 for label in encoded["labels"]), method
    encoder = collator.CGDEncoder(tiny_tokenizer, method="cgd", max_length=None)
    batch = collator.CGDCollator(pad_token_id=tiny_tokenizer.pad_token_id)([encoder.encode(r) for r in rows[:4]])
    assert batch["input_ids"].shape[0] == 4


def test_resume_sends_only_missing_requests_and_filters_rerun(questions_file, tmp_path):
    out = tmp_path / tmp_path.name  # a unique folder name: datasets caches local loads by it
    first = Builder(parse_args(_args(questions_file, out)))
    first.run()
    probe_path = out / "checkpoints" / "shard-00000-of-00001" / "probe.jsonl"
    lines = probe_path.read_text().splitlines(keepends=True)
    probe_path.write_text("".join(lines[:15]) + lines[15][:20])  # lose 5 rows, tear the last line
    (out / "checkpoints" / "shard-00000-of-00001" / "critique.jsonl").unlink()
    again = Builder(parse_args(_args(questions_file, out, "--verdict_mix", "1.0")))
    report = again.run()
    assert report["this_run"]["probe"]["requests"] == 5 and report["this_run"]["probe"]["resumed"] == 15
    assert report["this_run"]["probe"]["torn_bytes"] == 20
    assert report["this_run"]["critique"]["requests"] == 20 and report["this_run"]["refine"]["requests"] == 0
    # 20 probe requests answered over the two runs (the 5 lost rows were sent again, each counted once)
    assert report["stages"]["probe"]["requests_completed"] == 20 and report["stages"]["probe"]["runs"] == 2
    assert report["stages"]["refine"]["runs"] == 1 and report["stages"]["refine"]["finished_runs"] == 2  # 2nd: no work
    assert all(r[schema.VERDICT] == "right" for r in _rows(out)) and report["output"]["rows"] < 20


def test_changed_prompt_refuses_to_resume(questions_file, tmp_path):
    out = tmp_path / tmp_path.name  # a unique folder name: datasets caches local loads by it
    Builder(parse_args(_args(questions_file, out))).run()
    assert (
        main(_args(questions_file, out, "--refine_template", "Fix it: {question} {initial_response} {critique}")) == 1
    )


def test_shards_and_merge_equal_a_single_build(questions_file, tmp_path):
    single = tmp_path / (tmp_path.name + "-single")
    sharded = tmp_path / (tmp_path.name + "-sharded")
    Builder(parse_args(_args(questions_file, single))).run()
    for index in (0, 2):
        result = Builder(
            parse_args(_args(questions_file, sharded, "--num_shards", "3", "--shard_index", str(index)))
        ).run()
        assert result["shard_done"]
    with pytest.raises(MergeError, match="shard 1: no checkpoints"):
        Builder(parse_args(["merge", *_args(questions_file, sharded, "--num_shards", "3")])).run()
    Builder(parse_args(_args(questions_file, sharded, "--num_shards", "3", "--shard_index", "1"))).run()
    shard0 = sharded / "checkpoints" / "shard-00000-of-00003" / "refine.jsonl"
    saved = shard0.read_text()
    shard0.write_text("".join(saved.splitlines(keepends=True)[1:]))  # one row lost
    with pytest.raises(MergeError, match="shard 0: refine misses 1 rows"):
        Builder(parse_args(["merge", *_args(questions_file, sharded, "--num_shards", "3")])).run()
    shard0.write_text(saved)
    report = Builder(parse_args(["merge", *_args(questions_file, sharded, "--num_shards", "3")])).run()
    key = lambda r: r[schema.ID]  # noqa: E731
    assert sorted(_rows(sharded), key=key) == sorted(_rows(single), key=key)
    assert report["stages"]["probe"]["requests_completed"] == 20 and report["num_shards"] == 3


def test_n_samples_expand_rows(questions_file, tmp_path):
    out = tmp_path / tmp_path.name  # a unique folder name: datasets caches local loads by it
    report = Builder(
        parse_args(_args(questions_file, out, "--num_samples", "4", "--probe_n", "2", "--probe_temperature", "0.8"))
    ).run()
    rows = _rows(out)
    assert report["output"]["rows"] == 8 and len({r[schema.ID] for r in rows}) == 8
    assert sorted({r[schema.ID].rsplit(".", 1)[1] for r in rows}) == ["p0", "p1"]
    assert len({r[schema.QUESTION] for r in rows}) == 4


def test_transformers_backend_build(questions_file, tmp_path, tiny_checkpoint):
    out = tmp_path / tmp_path.name  # a unique folder name: datasets caches local loads by it
    args = _args(questions_file, out, "--num_samples", "3", "--backend", "transformers", "--device", "cpu")
    args += ["--student_model", str(tiny_checkpoint), "--teacher_model", str(tiny_checkpoint)]
    args += (
        [f"--{s}_max_tokens" for s in ("probe",)] + ["6"] + ["--critique_max_tokens", "6", "--refine_max_tokens", "6"]
    )
    args += ["--filter_unparsed", "false", "--filter_empty", "false", "--filter_truncated", "false"]
    report = Builder(parse_args(args)).run()
    rows = _rows(out)
    assert len(rows) == 3 and all(r[schema.VERDICT] == "unparsed" for r in rows)  # a random model writes no verdict
    assert all(1 <= r[schema.num_tokens_column("critique")] <= 6 for r in rows)
    assert report["stages"]["refine"]["completion_tokens"] == sum(r[schema.num_tokens_column("refine")] for r in rows)
    assert report["stages"]["probe"]["tokens_per_s"] > 0


def test_rebuilt_folder_is_not_served_from_a_stale_datasets_cache(questions_file, tmp_path):
    out = tmp_path / "ds"  # the same folder name in every test run, on purpose
    Builder(parse_args(_args(questions_file, out, "--num_samples", "3"))).run()
    assert all("check out" in r[schema.CRITIQUE] for r in _rows(out))
    critique = out / "checkpoints" / "shard-00000-of-00001" / "critique.jsonl"
    critique.write_text(critique.read_text().replace("check out", "check OUT"))  # same sizes, new content
    Builder(parse_args(["merge", *_args(questions_file, out, "--num_samples", "3")])).run()
    assert all("check OUT" in r[schema.CRITIQUE] for r in _rows(out))


def test_source_as_builder_name_plus_data_files_gives_the_same_ids(questions_file, tmp_path):
    from datasets_builders.sources import select_questions

    direct, _ = select_questions(parse_args(_args(questions_file, tmp_path / "a")).source)
    args = _args(questions_file, tmp_path / "b")
    args[args.index("--source") + 1] = "json"
    via_builder, report = select_questions(parse_args([*args, "--data_files", str(questions_file)]).source)
    assert [q.id for q in via_builder] == [q.id for q in direct] and len(direct) == 20
    assert report.source == questions_file.name and via_builder[0].source == questions_file.name  # no local path


def _online_with_token(monkeypatch, user="org"):
    """The Hub checks of the builder see a token and a reachable Hub (the fake HfApi answers whoami)."""
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    monkeypatch.setattr(huggingface_hub.HfApi, "whoami", lambda self: {"name": user, "orgs": []}, raising=False)


def test_push_to_hub_flag_uploads_the_built_folder(questions_file, tmp_path, fake_hub_api, monkeypatch):
    calls = fake_hub_api
    _online_with_token(monkeypatch)
    out = tmp_path / tmp_path.name
    report = Builder(
        parse_args(_args(questions_file, out, "--num_samples", "2", "--push_to_hub", "org/cgd", "--private", "true"))
    ).run()
    assert calls[0] == ("create_repo", "org/cgd", {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert calls[1][1]["folder_path"] == str(out) and calls[1][1]["repo_id"] == "org/cgd"
    assert report["output"]["hub_url"].endswith("org/cgd")
    assert json.loads((out / "build_report.json").read_text())["output"]["hub_url"].endswith("org/cgd")


def test_decontamination_against_the_shared_eval_sets(shared_data, tmp_path):
    eval_file = shared_data / "eval" / "gsm8k" / "test.jsonl"
    leaked = [json.loads(line)["question"] for line in eval_file.read_text().splitlines()[:5]]
    source = tmp_path / "mixed.jsonl"
    rows = [{"id": f"e{i}", "question": q} for i, q in enumerate(leaked)]
    rows += [{"id": f"s{i}", "question": f"What is {i} plus {i}?"} for i in range(5)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = _args(
        source,
        tmp_path / "out",
        "--decontaminate_files",
        str(eval_file),
        str(shared_data / "eval" / "math500" / "test.jsonl"),
    )
    config = parse_args(args)
    questions, report = Builder(config).questions()
    assert report.contaminated == 5 and len(questions) == 5
    assert all("plus" in q.question for q in questions) and sorted(report.contaminated_ids) == [
        f"e{i}" for i in range(5)
    ]
