"""Prompt templates for training: how each method turns a triplet row into one user turn.

The contract (the CGD paper, arXiv 2505.11628): for CGD the single user turn holds an instruction, the question, the
student's initial answer and the critique; the assistant turn is the refined answer. Baselines reuse
the same rendering with fewer sections. Rendering goes through the student's own chat template, so at
inference the trained model sees only the question in its usual format; a tokenizer without a chat
template gets a plain ``Question: ... Answer:`` layout (base models).

Every template is a ``str.format`` string over the row's columns and can be overridden from a recipe.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, fields
from typing import Any

from cgd.schema import get_method

CGD_TEMPLATE = (
    "Below is a question, a student's first attempt at it, and a teacher's critique of that attempt. "
    "Use the critique to write your own complete, correct solution to the question. Reason step by step "
    "and give the final answer at the end.\n\n"
    "Question:\n{question}\n\n"
    "Student's Initial Answer:\n{initial_response}\n\n"
    "Critique:\n{critique}"
)

CGD_NO_CRITIQUE_TEMPLATE = (
    "Below is a question and a student's first attempt at it. Check the attempt and write your own "
    "complete, correct solution to the question. Reason step by step and give the final answer at the end.\n\n"
    "Question:\n{question}\n\n"
    "Student's Initial Answer:\n{initial_response}"
)

CFT_TEMPLATE = (
    "Below is a question and a student's answer to it. Critique the answer step by step: point out what is "
    "right and what is wrong, then finish with a line that reads 'Conclusion: right' or 'Conclusion: wrong'.\n\n"
    "Question:\n{question}\n\n"
    "Student's Answer:\n{initial_response}"
)

QUESTION_ONLY_TEMPLATE = "{question}"

#: Plain layout for tokenizers without a chat template: the user text, then where the answer begins.
PLAIN_PROMPT_TEMPLATE = "Question: {prompt}\nAnswer:"


@dataclass
class PromptTemplates:
    """One user-turn template per training method, plus an optional system prompt.

    Field names match the ``method`` names of :mod:`cgd.schema`; override any of them in a recipe
    (``cgd_template: "..."``) to change the wording while keeping the placeholders.
    """

    cgd: str = CGD_TEMPLATE
    cgd_no_critique: str = CGD_NO_CRITIQUE_TEMPLATE
    cft: str = CFT_TEMPLATE
    sft: str = QUESTION_ONLY_TEMPLATE
    distilled_sft: str = QUESTION_ONLY_TEMPLATE
    system_prompt: str | None = None
    plain_prompt: str = PLAIN_PROMPT_TEMPLATE

    def for_method(self, method: str) -> str:
        get_method(method)  # validates the name
        return getattr(self, method)

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None) -> PromptTemplates:
        """Build templates from a ``{field: template}`` mapping, rejecting unknown fields."""
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"Unknown prompt template field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**overrides)


def build_user_message(method: str, row: dict[str, Any], templates: PromptTemplates | None = None) -> str:
    """The user-turn text of ``row`` for ``method`` (only the method's input columns are used)."""
    return build_user_message_spans(method, row, templates)[0]


def build_user_message_spans(
    method: str, row: dict[str, Any], templates: PromptTemplates | None = None
) -> tuple[str, list[tuple[int, int]]]:
    """:func:`build_user_message` plus the ``(start, end)`` character span of every value taken from ``row``.

    The spans say which characters are data rather than template wording, so the encoder can keep data text
    (e.g. a literal ``<|im_end|>`` inside a critique) as plain text.
    """
    templates = templates or PromptTemplates()
    spec = get_method(method)
    formatter = string.Formatter()
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    for literal, name, spec_, conversion in formatter.parse(templates.for_method(method)):
        parts.append(literal)
        length += len(literal)
        if name is None:
            continue
        if name not in spec.inputs:
            raise ValueError(
                f"Template for method {method!r} uses placeholder {name!r} which is not one of its inputs {spec.inputs}"
            )
        value = formatter.format_field(formatter.convert_field(row[name], conversion), spec_ or "")
        parts.append(value)
        spans.append((length, length + len(value)))
        length += len(value)
    return "".join(parts), spans


def build_messages(user_message: str, templates: PromptTemplates | None = None) -> list[dict[str, str]]:
    """Chat messages for a user turn, with the template's system prompt when it has one."""
    templates = templates or PromptTemplates()
    messages = [{"role": "system", "content": templates.system_prompt}] if templates.system_prompt else []
    messages.append({"role": "user", "content": user_message})
    return messages


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer: Any, user_message: str, templates: PromptTemplates | None = None) -> str:
    """The text the model sees before it starts answering (generation prompt included)."""
    templates = templates or PromptTemplates()
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            build_messages(user_message, templates), tokenize=False, add_generation_prompt=True
        )
    return templates.plain_prompt.format(prompt=user_message)


def render_completion(
    tokenizer: Any,
    user_message: str,
    target: str,
    templates: PromptTemplates | None = None,
    prompt: str | None = None,
) -> str:
    """The text that follows :func:`render_prompt`: the target and the end-of-turn marker.

    With a chat template this is the assistant turn exactly as the template renders it (so the model
    learns the template's own end-of-turn token); trailing whitespace the template puts after the
    end-of-turn token is dropped, so the last learned token is the end-of-turn itself. Without a chat
    template it is ``" " + target + eos_token``. ``prompt``, when given, must be
    ``render_prompt(tokenizer, user_message, templates)``; passing it saves rendering it twice.
    """
    templates = templates or PromptTemplates()
    if not has_chat_template(tokenizer):
        return f" {target}{tokenizer.eos_token or ''}"
    if prompt is None:
        prompt = render_prompt(tokenizer, user_message, templates)
    messages = build_messages(user_message, templates) + [{"role": "assistant", "content": target}]
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise ValueError(
            "The tokenizer's chat template does not render the conversation as prompt + assistant turn; "
            "set a `plain_prompt` layout or a compatible chat template."
        )
    return full[len(prompt) :].rstrip()
