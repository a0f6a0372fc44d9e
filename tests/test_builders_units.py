"""Unit tests of the dataset builders: verdicts, prompts, config, sources, filters, checkpoints, backends, card."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass

import pytest

from cgd import schema
from cgd.verdict import parse_verdict
from datasets_builders import config as cfg
from datasets_builders.backends.base import Completion, Request, Sampling
from datasets_builders.checkpoint import CheckpointError, ShardLock, StageCheckpoint, check_fingerprints
from datasets_builders.filters import Decontaminator, FilterCount, apply_filters, mix_sizes, select_verdict_mix
from datasets_builders.prompts import CRITIQUE_TEMPLATE, check_template, fill_template
from datasets_builders.sources import select_questions, stable_id

# -- verdicts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("The steps are fine.\nConclusion: right", "right"),
        ("...\nConclusion: wrong", "wrong"),
        ("**Conclusion:** Wrong", "wrong"),
        ("**Conclusion**: RIGHT", "right"),
        ("### Conclusion: **right**", "right"),
        ("Conclusion - `wrong`.", "wrong"),
        ("Conclusion： correct", "right"),
        ("Conclusion: incorrect", "wrong"),
        ("conclusion: wrong\n\nOn second thought...\nConclusion: right", "right"),  # last one wins
        ("Conclusion: the answer is wrong", "unparsed"),
        ("The answer is right.", "unparsed"),
        ("Conclusion: rightly so", "unparsed"),
        ("", "unparsed"),
        (None, "unparsed"),
    ],
)
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected


# -- prompts --------------------------------------------------------------------------------------


def test_fill_template_leaves_latex_braces_alone():
    out = fill_template(
        "Q: {question}\nput it in \\boxed{} or \\frac{a}{b}; draft {initial_response}",
        {"question": "1+1?", "initial_response": None},
    )
    assert out == "Q: 1+1?\nput it in \\boxed{} or \\frac{a}{b}; draft "


def test_check_template():
    check_template("critique", CRITIQUE_TEMPLATE)
    assert "Conclusion: right" in CRITIQUE_TEMPLATE and "Conclusion: wrong" in CRITIQUE_TEMPLATE
    with pytest.raises(ValueError, match="initial_response"):
        check_template("critique", "Judge {question}")
    with pytest.raises(ValueError, match="do not exist yet"):
        check_template("probe", "{question} {critique}")


# -- config ---------------------------------------------------------------------------------------


def _write(tmp_path, text, name="r.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


BASE_RECIPE = "source: q.jsonl\nstudent_model: s\nteacher_model: t\nbackend: dry_run\n"


def test_config_yaml_cli_override_and_stage_defaults(tmp_path):
    recipe = _write(
        tmp_path, BASE_RECIPE + "critique_temperature: 0.7\nrefine_backend: openai\nbase_url: http://x/v1\n"
    )
    config = cfg.parse_args(
        ["--config", recipe, "--num_samples", "5", "--critique_model", "judge", "--probe_seed", "null"]
    )
    assert config.source.num_samples == 5
    specs = {s.name: s for s in cfg.resolve_stages(config)}
    assert list(specs) == ["probe", "critique", "refine"]  # direct is off by default
    assert specs["probe"].model == "s" and specs["critique"].model == "judge" and specs["refine"].model == "t"
    assert specs["critique"].temperature == 0.7 and specs["refine"].temperature == 0.0
    assert specs["refine"].backend == "openai" and specs["refine"].base_url == "http://x/v1"
    assert specs["probe"].backend == "dry_run" and specs["probe"].seed == 42


def test_config_unknown_keys_fail(tmp_path):
    with pytest.raises(
        cfg.ConfigError, match=r"r\.yaml: unknown key\(s\) `temprature` \(did you mean `probe_temperature`"
    ):
        cfg.parse_args(["--config", _write(tmp_path, BASE_RECIPE + "temprature: 0.5\n")])
    with pytest.raises(cfg.ConfigError, match="Command line: unknown key.*`not_a_key`"):
        cfg.parse_args(["--config", _write(tmp_path, BASE_RECIPE), "--not_a_key", "1"])


@pytest.mark.parametrize(
    "extra,match",
    [
        ("backend: tgi\n", "Unknown backend"),
        ("backend: openai\n", "base_url"),
        ("shard_index: 3\nnum_shards: 2\n", "shard_index"),
        ("verdict_mix: 1.5\n", "verdict_mix"),
        ("refine_enabled: false\n", "cannot be disabled"),
        ("critique_template: 'Grade {question}'\n", "initial_response"),
    ],
)
def test_config_validation(tmp_path, extra, match):
    with pytest.raises(ValueError, match=match):
        cfg.parse_args(["--config", _write(tmp_path, BASE_RECIPE + extra)])


def test_recipes_parse():
    from pathlib import Path

    recipes = sorted(Path(__file__).resolve().parents[1].glob("recipes/builders/*.yaml"))
    assert len(recipes) >= 4
    for recipe in recipes:
        config = cfg.parse_args(["--config", str(recipe)])
        specs = cfg.resolve_stages(config)
        assert [s.name for s in specs][:3] == ["probe", "critique", "refine"]
    paper = cfg.parse_args(["--config", "recipes/builders/llama31_8b_from_llama33_70b.yaml"])
    specs = {s.name: s for s in cfg.resolve_stages(paper)}
    assert paper.source.num_samples == 100_000 and paper.model.tensor_parallel_size == 8
    assert specs["critique"].max_tokens == 32768 and all(s.temperature == 0.0 for s in specs.values())


# -- sources --------------------------------------------------------------------------------------


@dataclass
class _Src:
    source: str = "mem"
    source_preset: str | None = None
    source_config: str | None = None
    source_split: str = "train"
    data_files: list | None = None
    question_column: str | None = "q"
    answer_column: str | None = "a"
    id_column: str | None = "i"
    reference_answer_format: str | None = None
    num_samples: int | None = None
    seed: int = 0
    dedupe: bool = True


def _dataset(rows):
    import datasets

    return datasets.Dataset.from_list(rows)


def test_sources_malformed_reported_with_ids_and_dedupe():
    rows = [{"q": f"What is {i}?", "a": str(i), "i": f"r{i}"} for i in range(6)]
    rows += [
        {"q": "", "a": "1", "i": "bad-empty"},
        {"q": "   ", "a": "1", "i": "bad-blank"},
        {"q": None, "a": "1", "i": "bad-none"},
        {"q": "WHAT is  3?", "a": "3", "i": "dup"},
    ]
    selected, report = select_questions(_Src(), dataset=_dataset(rows))
    assert {m["source_id"] for m in report.malformed} == {"bad-empty", "bad-blank", "bad-none"}
    assert report.duplicates == 1 and len(selected) == 6
    assert {q.source_id for q in selected} <= {f"r{i}" for i in range(6)} | {"dup"}
    again, _ = select_questions(_Src(), dataset=_dataset(rows))
    assert [q.id for q in again] == [q.id for q in selected]  # deterministic
    assert selected[0].id == stable_id("mem", selected[0].source_id, selected[0].question)


def test_sources_sampling_seeded_and_decontaminated():
    rows = [{"q": f"Question number {i} about apples", "a": None, "i": i} for i in range(50)]
    a, _ = select_questions(_Src(num_samples=10, seed=1), dataset=_dataset(rows))
    b, _ = select_questions(_Src(num_samples=10, seed=1), dataset=_dataset(rows))
    c, _ = select_questions(_Src(num_samples=10, seed=2), dataset=_dataset(rows))
    assert [q.id for q in a] == [q.id for q in b] != [q.id for q in c]
    banned = {q.question for q in a[:3]}
    d, report = select_questions(
        _Src(num_samples=10, seed=1), is_contaminated=lambda t: t in banned, dataset=_dataset(rows)
    )
    assert len(d) == 10 and report.contaminated == 3 and not banned & {q.question for q in d}
    assert all(q.reference_answer is None for q in d)


def test_sources_column_errors_and_preset_fallback():
    with pytest.raises(ValueError, match="Question column"):
        select_questions(_Src(question_column="nope"), dataset=_dataset([{"q": "x", "a": "1", "i": 1}]))
    preset = _Src(
        source_preset="webinstructsub", source=None, question_column=None, answer_column="auto", id_column="auto"
    )
    selected, _ = select_questions(preset, dataset=_dataset([{"question": "x?", "answer": "1"}]))  # no "index" column
    assert selected[0].source == "TIGER-Lab/WebInstructSub" and selected[0].source_id == "0"
    dup_index = _dataset(
        [{"question": "x?", "answer": "1", "index": 7}, {"question": "y?", "answer": "2", "index": 7}]
    )
    selected, _ = select_questions(preset, dataset=dup_index)  # the preset's id column is not unique: hashes
    assert len({q.id for q in selected}) == 2
    with pytest.raises(ValueError, match="id '1' .* rows 0 and 1 with different questions.*id_column: null"):
        select_questions(_Src(), dataset=_dataset([{"q": "x", "a": "1", "i": 1}, {"q": "y", "a": "1", "i": 1}]))


# -- filters --------------------------------------------------------------------------------------


def test_decontaminator(tmp_path):
    eval_file = tmp_path / "test.jsonl"
    long_q = " ".join(f"w{i}" for i in range(30))
    eval_file.write_text(
        json.dumps({"problem": long_q}) + "\n" + json.dumps({"question": "What is two plus two"}) + "\n"
    )
    d = Decontaminator([eval_file], n=13)
    assert d("Prefix words then " + " ".join(f"w{i}" for i in range(5, 18)) + " and more")  # one shared 13-gram
    assert not d(" ".join(f"w{i}" for i in range(5, 17)))  # only 12 words in common, and 12 < 13: whole text
    assert d("what is two PLUS two?")  # short eval question copied verbatim
    assert not d("what is two plus three")


def _row(i, verdict="right", **kw):
    row = {c: None for c in schema.ALL_COLUMNS}
    row.update(
        {
            schema.ID: f"r{i}",
            schema.INITIAL_RESPONSE: "y",
            schema.CRITIQUE: "c",
            schema.REFINED_RESPONSE: "\\boxed{4}",
            schema.VERDICT: verdict,
        }
    )
    for s in ("probe", "critique", "refine"):
        row[schema.finish_reason_column(s)] = "stop"
    row.update(kw)
    return row


@dataclass
class _Filters:
    filter_empty: bool = True
    filter_truncated: bool = True
    filter_unparsed: bool = True
    check_refined_answer: bool = False
    verdict_mix: float | None = None


def test_filters_each_counted_in_order():
    rows = [
        _row(0),
        _row(1, **{schema.CRITIQUE: "  "}),
        _row(2, **{schema.finish_reason_column("refine"): "length"}),
        _row(3, verdict="unparsed"),
        _row(4, **{schema.REFERENCE_ANSWER: "5"}),
        _row(5, **{schema.REFERENCE_ANSWER: "#### 4"}),
        _row(6, verdict="wrong"),
    ]
    kept, counts = apply_filters(rows, _Filters(check_refined_answer=True), ["probe", "critique", "refine"])
    by = {c.name: c for c in counts}
    assert [r[schema.ID] for r in kept] == ["r0", "r5", "r6"]
    assert by["empty_output"].dropped_ids == ["r1"] and by["empty_output"].detail == {"critique": 1}
    assert by["truncated"].dropped_ids == ["r2"] and by["truncated"].detail == {"refine": 1}
    assert by["unparsed_verdict"].dropped_ids == ["r3"]
    assert by["refined_vs_reference"].dropped_ids == ["r4"] and by["refined_vs_reference"].detail["no_reference"] == 2
    assert by["verdict_mix"].enabled is False and by["verdict_mix"].rows_out == 3


def test_verdict_mix():
    assert mix_sizes(10, 10, 0.5) == (10, 10)
    assert mix_sizes(10, 4, 0.5) == (4, 4)
    assert mix_sizes(3, 10, 0.25) == (3, 9)
    assert mix_sizes(5, 5, 1.0) == (5, 0) and mix_sizes(5, 5, 0.0) == (0, 5)
    rows = [_row(i, "right") for i in range(12)] + [_row(100 + i, "wrong") for i in range(4)] + [_row(200, "unparsed")]
    count = FilterCount("verdict_mix", True)
    kept = select_verdict_mix(rows, 0.5, seed=0, count=count)
    verdicts = [r[schema.VERDICT] for r in kept]
    assert verdicts.count("right") == 4 and verdicts.count("wrong") == 4
    assert count.dropped == 9 and count.detail == {"right": 8, "unparsed": 1}
    assert [r[schema.ID] for r in select_verdict_mix(rows, 0.5, 0, FilterCount("m", True))] == [
        r[schema.ID] for r in kept
    ]


# -- checkpoints ----------------------------------------------------------------------------------


def test_checkpoint_torn_tail_discarded_and_corruption_detected(tmp_path):
    path = tmp_path / "probe.jsonl"
    cp = StageCheckpoint(path)
    cp.append({"id": "a", "outputs": [{"text": "x"}]})
    cp.append({"id": "b", "outputs": [{"text": "y"}]})
    cp.close()
    good = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"id": "c", "outputs": [{"te')  # killed mid-write
    cp = StageCheckpoint(path)
    assert set(cp.records) == {"a", "b"} and cp.torn_bytes > 0
    assert path.read_bytes() == good  # truncated back to the last record boundary
    cp.append({"id": "c", "outputs": []})
    cp.close()
    assert set(StageCheckpoint(path).records) == {"a", "b", "c"}
    path.write_bytes(good + b"not json\n")
    with pytest.raises(CheckpointError, match="not a checkpoint record"):
        StageCheckpoint(path)


def test_fingerprint_change_refused_and_lock(tmp_path):
    check_fingerprints(tmp_path, {"probe": "aaa"})
    (tmp_path / "probe.jsonl").write_text('{"id": "x", "outputs": []}\n')
    check_fingerprints(tmp_path, {"probe": "aaa", "critique": "bbb"})
    with pytest.raises(CheckpointError, match="different model/prompt/sampling"):
        check_fingerprints(tmp_path, {"probe": "zzz"})
    lock = ShardLock(tmp_path)
    with pytest.raises(CheckpointError, match="Another build"):
        ShardLock(tmp_path)
    lock.release()
    ShardLock(tmp_path).release()


# -- backends -------------------------------------------------------------------------------------


def test_openai_request_kwargs_and_response_parsing():
    from datasets_builders.backends.openai_backend import completions_from_response, request_kwargs

    req = Request("r1", "hello", system="be brief")
    greedy = request_kwargs("m", req, Sampling(0.0, 0.9, 64, 1, seed=3), n=1)
    assert greedy == {
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        "max_tokens": 64,
        "temperature": 0.0,
        "top_p": 0.9,
    }
    sampled = request_kwargs("m", req, Sampling(0.7, 0.9, 64, 2, seed=3), n=2)
    assert sampled["n"] == 2 and sampled["seed"] == 3
    ns = types.SimpleNamespace
    resp = ns(
        choices=[
            ns(message=ns(content="a"), finish_reason="length"),
            ns(message=ns(content=None), finish_reason=None),
        ],
        usage=ns(completion_tokens=10, prompt_tokens=7),
    )
    assert completions_from_response(resp) == [Completion("a", "length", 5, 7), Completion("", "stop", 5, 7)]


def test_vllm_backend_import_error_is_clear(monkeypatch):
    from datasets_builders.backends.vllm_backend import VLLMBackend

    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[vllm\]'.*backend: openai"):
        VLLMBackend("some/model")


def test_vllm_backend_request_building_with_a_stub(monkeypatch, tiny_tokenizer):
    from datasets_builders.backends import vllm_backend

    calls = {}

    class LLM:
        def __init__(self, **kwargs):
            calls["llm"] = kwargs

        def get_tokenizer(self):
            return tiny_tokenizer

        def generate(self, prompts, params, use_tqdm=False):
            calls.setdefault("prompts", []).extend(prompts)
            out = types.SimpleNamespace
            return [
                out(
                    prompt_token_ids=[1, 2, 3],
                    outputs=[out(text=f"ans{i}", finish_reason="length", token_ids=[5] * 4)],
                )
                for i, _ in enumerate(prompts)
            ]

    stub = types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kw: calls.setdefault("sampling", kw))
    monkeypatch.setitem(sys.modules, "vllm", stub)
    backend = vllm_backend.VLLMBackend(
        "org/m",
        batch_size=2,
        tensor_parallel_size=8,
        gpu_memory_utilization=0.8,
        max_model_len=None,
        dtype="bfloat16",
        trust_remote_code=False,
        seed=0,
    )
    assert calls["llm"] == {
        "model": "org/m",
        "tensor_parallel_size": 8,
        "gpu_memory_utilization": 0.8,
        "dtype": "bfloat16",
        "trust_remote_code": False,
        "seed": 0,
    }
    got = []
    backend.generate(
        [Request(f"r{i}", f"q{i}") for i in range(3)], Sampling(0.0, 0.5, 32, 1, 7), lambda r, c: got.append((r.id, c))
    )
    assert calls["sampling"] == {"n": 1, "temperature": 0.0, "top_p": 1.0, "max_tokens": 32}
    assert calls["prompts"][0] == "<|im_start|>user\nq0<|im_end|>\n<|im_start|>assistant\n"
    assert [g[0] for g in got] == ["r0", "r1", "r2"] and got[0][1] == [Completion("ans0", "length", 4, 3)]


def test_transformers_backend_in_process(tiny_checkpoint):
    from datasets_builders.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(str(tiny_checkpoint), batch_size=3, device="cpu", dtype="float32")
    requests = [Request(f"r{i}", f"What is {i} plus {i}?") for i in range(4)]
    got: dict[str, list[Completion]] = {}
    backend.generate(requests, Sampling(0.0, 1.0, 8, 1), lambda r, c: got.__setitem__(r.id, c))
    assert sorted(got) == ["r0", "r1", "r2", "r3"]
    for comps in got.values():
        (c,) = comps
        assert c.finish_reason in ("stop", "length") and 1 <= c.num_tokens <= 8 and c.prompt_tokens > 5
        assert (c.finish_reason == "length") == (c.num_tokens == 8 and c.finish_reason != "stop")
    single = {}
    TransformersBackend(str(tiny_checkpoint), batch_size=1, device="cpu").generate(
        requests[:2], Sampling(0.0, 1.0, 8, 1), lambda r, c: single.__setitem__(r.id, c)
    )
    assert single["r0"][0].text == got["r0"][0].text  # greedy: same text alone or in a padded batch
    sampled = {}
    backend.generate(requests[:1], Sampling(1.0, 0.9, 8, 2, seed=0), lambda r, c: sampled.__setitem__(r.id, c))
    assert len(sampled["r0"]) == 2


def test_transformers_backend_delivers_each_row_when_it_ends(tiny_checkpoint):
    """A row that ends early is handed over (checkpointed, counted by the bar) while its batch still generates."""
    import inspect

    from datasets_builders.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(str(tiny_checkpoint), batch_size=3, device="cpu", dtype="float32")
    requests = [Request(f"r{i}", f"What is {i} plus {i}?") for i in range(3)]
    first = {}
    backend.generate(requests[:1], Sampling(0.0, 1.0, 1, 1), lambda r, c: first.__setitem__(r.id, c))
    first_token = backend.tokenizer(first["r0"][0].text, add_special_tokens=False)["input_ids"][0]
    backend.eos_ids = backend.eos_ids | {first_token}  # r0's first greedy token now ends it at step 1
    order, during_generate = [], {}

    def on_result(request, completions):
        order.append(request.id)
        during_generate[request.id] = any(
            f.function == "generate" and "generation" in f.filename for f in inspect.stack()
        )
        assert completions[0].finish_reason in ("stop", "length")

    backend.generate(requests, Sampling(0.0, 1.0, 12, 1), on_result)
    assert order[0] == "r0" and sorted(order) == ["r0", "r1", "r2"]
    assert during_generate["r0"]  # delivered from inside model.generate, not after the batch


# -- card and hub ---------------------------------------------------------------------------------


def test_card_metadata_has_a_config_per_view():
    from datasets_builders.card import card_metadata

    meta = card_metadata("apache-2.0")
    names = [c["config_name"] for c in meta["configs"]]
    assert names == ["default", *schema.METHODS]
    for c in meta["configs"][1:]:
        assert set(schema.required_columns(c["config_name"])) <= set(c["columns"])


def test_push_folder_wiring(fake_hub_api, tmp_path):
    from datasets_builders import output

    calls = fake_hub_api
    url = output.push_folder(tmp_path, "org/cgd-x", private=True)
    assert url.endswith("org/cgd-x")
    assert calls[0] == ("create_repo", "org/cgd-x", {"repo_type": "dataset", "private": True, "exist_ok": True})
    upload = calls[1][1]
    assert (
        upload["repo_id"] == "org/cgd-x"
        and upload["repo_type"] == "dataset"
        and upload["folder_path"] == str(tmp_path)
    )
    assert "README.md" in upload["allow_patterns"] and not any("checkpoints" in p for p in upload["allow_patterns"])
