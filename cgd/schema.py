"""The CGD triplet schema: one row per question, shared by the builders, the collator and the tools.

A builder writes these columns; every training method reads a subset of them. Keeping the names in
one place is what lets one builder output serve CGD and all of its baselines like for like.
"""

from __future__ import annotations

from dataclasses import dataclass

# Core text fields.
ID = "id"
QUESTION = "question"
REFERENCE_ANSWER = "reference_answer"  # from the source dataset, when it has one (SFT target)
INITIAL_RESPONSE = "initial_response"  # y': the untrained student's answer to the question alone
CRITIQUE = "critique"  # c: the teacher's critique of y', closing with "Conclusion: right|wrong"
VERDICT = "verdict"  # parsed from the critique: "right", "wrong" or "unparsed"
REFINED_RESPONSE = "refined_response"  # ŷ: the teacher's refined answer given (x, y', c) — the CGD target
TEACHER_ANSWER = "teacher_answer"  # the teacher's direct answer to x (distilled-SFT target), optional

# Provenance.
SOURCE = "source"  # source dataset (Hub id or path)
SOURCE_ID = "source_id"  # id of the row in the source dataset
STUDENT_MODEL = "student_model"
TEACHER_MODEL = "teacher_model"

#: The generation stages, in order. Provenance columns are named ``finish_reason_<stage>`` and
#: ``num_tokens_<stage>`` for each stage that ran.
STAGES: tuple[str, ...] = ("probe", "critique", "refine", "direct")

VERDICTS: tuple[str, ...] = ("right", "wrong", "unparsed")


def finish_reason_column(stage: str) -> str:
    return f"finish_reason_{stage}"


def num_tokens_column(stage: str) -> str:
    return f"num_tokens_{stage}"


#: Every column a complete builder output carries, in order.
ALL_COLUMNS: tuple[str, ...] = (
    ID,
    QUESTION,
    REFERENCE_ANSWER,
    INITIAL_RESPONSE,
    CRITIQUE,
    VERDICT,
    REFINED_RESPONSE,
    TEACHER_ANSWER,
    SOURCE,
    SOURCE_ID,
    STUDENT_MODEL,
    TEACHER_MODEL,
    *(finish_reason_column(s) for s in STAGES),
    *(num_tokens_column(s) for s in STAGES),
)


@dataclass(frozen=True)
class MethodSpec:
    """Which columns a training method shows the student (``inputs``) and which one it learns (``target``)."""

    name: str
    inputs: tuple[str, ...]
    target: str
    description: str


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("cgd", (QUESTION, INITIAL_RESPONSE, CRITIQUE), REFINED_RESPONSE, "(x, y', c) -> refined answer"),
        MethodSpec("cgd_no_critique", (QUESTION, INITIAL_RESPONSE), REFINED_RESPONSE, "(x, y') -> refined answer"),
        MethodSpec("cft", (QUESTION, INITIAL_RESPONSE), CRITIQUE, "(x, y') -> critique"),
        MethodSpec("sft", (QUESTION,), REFERENCE_ANSWER, "x -> reference answer"),
        MethodSpec("distilled_sft", (QUESTION,), TEACHER_ANSWER, "x -> teacher's direct answer"),
    )
}


def get_method(name: str) -> MethodSpec:
    """Look a method up by name, with an error that lists the valid ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"Unknown method {name!r}; choose one of: {', '.join(METHODS)}") from None


def required_columns(method: str) -> tuple[str, ...]:
    """Columns a dataset must have to train ``method``."""
    spec = get_method(method)
    return (*spec.inputs, spec.target)
