"""Prompt templates: which fields each method shows, and how prompt + completion render."""

from __future__ import annotations

import pytest

from cgd import schema
from cgd.templates import (
    PromptTemplates,
    build_user_message,
    render_completion,
    render_prompt,
)


@pytest.fixture()
def row(triplet_rows):
    return triplet_rows[0]


@pytest.mark.parametrize("method", list(schema.METHODS))
def test_user_message_shows_only_the_method_inputs(method, row):
    spec = schema.METHODS[method]
    message = build_user_message(method, row)
    for name in (schema.QUESTION, schema.INITIAL_RESPONSE, schema.CRITIQUE):
        assert (row[name] in message) == (name in spec.inputs), name
    assert row[spec.target] not in message


def test_cgd_message_has_the_paper_sections_in_order(row):
    message = build_user_message("cgd", row)
    positions = [message.index(s) for s in ("Question:", "Student's Initial Answer:", "Critique:")]
    assert positions == sorted(positions)


def test_values_with_braces_are_not_format_fields(row):
    row = {**row, schema.QUESTION: r"Solve \boxed{x} for {y}"}
    assert r"Solve \boxed{x} for {y}" in build_user_message("cgd", row)


def test_chat_prompt_and_completion_concatenate_to_the_full_conversation(tiny_tokenizer, row):
    user = build_user_message("cgd", row)
    prompt = render_prompt(tiny_tokenizer, user)
    completion = render_completion(tiny_tokenizer, user, row[schema.REFINED_RESPONSE])
    assert prompt.endswith("<|im_start|>assistant\n")
    assert completion == row[schema.REFINED_RESPONSE] + "<|im_end|>"
    full = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": user}, {"role": "assistant", "content": row[schema.REFINED_RESPONSE]}],
        tokenize=False,
    )
    assert full.rstrip() == prompt + completion
    assert render_completion(tiny_tokenizer, user, "x", prompt=prompt) == render_completion(tiny_tokenizer, user, "x")


def test_plain_layout_without_chat_template(tiny_tokenizer):
    tok = tiny_tokenizer.__class__(tokenizer_object=tiny_tokenizer.backend_tokenizer, eos_token="<|im_end|>")
    tok.chat_template = None
    assert render_prompt(tok, "What is 2+2?") == "Question: What is 2+2?\nAnswer:"
    assert render_completion(tok, "What is 2+2?", "4") == " 4<|im_end|>"


def test_system_prompt_and_overrides(tiny_tokenizer, row):
    templates = PromptTemplates.from_overrides({"system_prompt": "Be brief.", "sft": "Q: {question}"})
    assert render_prompt(tiny_tokenizer, "hi", templates).startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert build_user_message("sft", row, templates) == "Q: " + row[schema.QUESTION]
    with pytest.raises(ValueError, match="Unknown prompt template field"):
        PromptTemplates.from_overrides({"cgd_templat": "x"})
    with pytest.raises(ValueError, match="placeholder 'critique'"):
        build_user_message("sft", row, PromptTemplates(sft="{question} {critique}"))
    with pytest.raises(ValueError, match="Unknown method"):
        build_user_message("cgdd", row)
