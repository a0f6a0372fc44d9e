"""cgd.eval.compat: lighteval 0.13's transformers backend with whole prompts, the run's generation length, a CPU
batch size, the sample cache outside model folders, IFEval without nltk data, and per-doc system lines."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def model_factory(tiny_checkpoint):
    from cgd.eval.compat import apply

    apply()
    from lighteval.models.transformers.transformers_model import TransformersModel, TransformersModelConfig

    def make(**kwargs):
        params = {"model_name": str(tiny_checkpoint), "device": "cpu", "batch_size": 2, **kwargs}
        return TransformersModel(TransformersModelConfig(**params))

    return make


def _doc(words: int, generation_size: int, task: str = "cgd_test"):
    from lighteval.tasks.requests import Doc

    query = "Solve: " + " ".join(f"w{i % 50}" for i in range(words))
    return Doc(query=query, choices=["1"], gold_index=0, task_name=task, generation_size=generation_size)


def _prompt_tokens(model, doc) -> int:
    return len(
        model.tokenizer(model.prompt_manager.prepare_prompt(doc), add_special_tokens=model.add_special_tokens)[
            "input_ids"
        ]
    )


def test_prompts_are_never_cut_to_max_new_tokens(model_factory):
    """lighteval 0.13 tokenizes with max_length=max_new_tokens: a 3-token cap kept 3 prompt tokens."""
    model = model_factory(generation_parameters={"max_new_tokens": 3, "temperature": 0.0})
    docs = [_doc(120, 4096), _doc(60, 4096)]
    responses = model._padded_greedy_until(docs)
    for doc, response in zip(docs, responses):
        assert len(response.input_tokens) >= _prompt_tokens(model, doc) > 3
        assert response.truncated_tokens_count == 0
        assert len(response.output_tokens[0]) <= 3


def test_run_max_new_tokens_raises_a_task_length(model_factory):
    """lighteval 0.13 generates the task's generation_size whatever max_new_tokens says: 1 here."""
    model = model_factory(generation_parameters={"max_new_tokens": 6, "temperature": 0.0})
    (response,) = model._padded_greedy_until([_doc(10, 1)])
    assert len(response.output_tokens[0]) > 1


def test_prompt_longer_than_context_is_an_error_or_counted(model_factory, monkeypatch):
    from cgd.eval.compat import PROMPT_CUT_VAR, PromptTooLongError

    model = model_factory(max_length=48, generation_parameters={"max_new_tokens": 2, "temperature": 0.0})
    docs = [_doc(200, 2), _doc(3, 2)]
    monkeypatch.delenv(PROMPT_CUT_VAR, raising=False)
    with pytest.raises(PromptTooLongError, match="cgd_test: 1 of 2"):
        model._padded_greedy_until(docs)
    monkeypatch.setenv(PROMPT_CUT_VAR, "count")
    long, short = model._padded_greedy_until(docs)
    assert long.truncated_tokens_count == _prompt_tokens(model, docs[0]) - 47 > 0
    assert short.truncated_tokens_count == 0


def test_cpu_run_without_batch_size_does_not_probe(model_factory):
    from cgd.eval.compat import CPU_BATCH_SIZE

    model = model_factory(batch_size=None)
    assert model._get_batch_size(max_input_length=100_000, override_bs=None) == CPU_BATCH_SIZE
    assert model._get_batch_size(max_input_length=100_000, override_bs=3) == 3


def test_sample_cache_stays_out_of_model_folders(tiny_checkpoint, tmp_path):
    from cgd.eval.compat import apply

    apply()
    from lighteval.models.transformers.transformers_model import TransformersModelConfig
    from lighteval.utils.cache_management import SampleCache

    config = TransformersModelConfig(model_name=str(Path(tiny_checkpoint).resolve()), cache_dir=str(tmp_path / "c"))
    cache = SampleCache(config)
    assert cache.cache_dir.is_relative_to(tmp_path / "c")
    assert not cache.cache_dir.is_relative_to(Path(tiny_checkpoint).resolve())


def test_ifeval_check_without_nltk_data_scores_not_followed(monkeypatch, tmp_path):
    from cgd.eval.compat import apply

    apply()
    import nltk
    from lighteval.tasks.tasks.ifeval import instructions, instructions_utils

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    instructions_utils._get_sentence_tokenizer.cache_clear()
    try:
        checker = instructions.NumberOfSentences("number_sentences")
        checker.build_description(num_sentences=2, relation="less than")
        assert checker.check_following("One. Two. Three.") is False
    finally:
        instructions_utils._get_sentence_tokenizer.cache_clear()


def test_doc_system_prompt_is_a_system_turn(model_factory):
    from lighteval.tasks.requests import Doc

    model = model_factory()
    doc = Doc(
        query="What is 2+2?", choices=["4"], gold_index=0, task_name="t", specific={"system_prompt": "SYSTEM-LINE"}
    )
    prompt = model.prompt_manager.prepare_prompt(doc)
    assert "SYSTEM-LINE" in prompt and prompt.index("SYSTEM-LINE") < prompt.index("What is 2+2?")
    assert model.prompt_manager.system_prompt is None
