"""Default generation prompts for the builder stages, and how a template is filled from a row.

Templates use ``{placeholder}`` names from :data:`PLACEHOLDERS`. Only those exact names are replaced, so
LaTeX braces (``\\boxed{}``, ``\\frac{a}{b}``) need no escaping in recipe overrides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PROBE_TEMPLATE = "{question}"

CRITIQUE_TEMPLATE = (
    "You are grading a student's answer. Read the question and the student's answer, then check the "
    "student's work one step at a time: verify every claim and every calculation, and explain clearly "
    "where and why the student goes wrong, if anywhere. Do not write your own full solution.\n"
    "Your critique must end with a last line that is exactly `Conclusion: right` if the student's final "
    "answer is correct, or exactly `Conclusion: wrong` if it is not.\n\n"
    "Question:\n{question}\n\n"
    "Student's answer:\n{initial_response}"
)

REFINE_TEMPLATE = (
    "Below are a question, a student's first attempt at it and a teacher's critique of that attempt. "
    "Using what the critique points out, write a complete, correct solution to the question. Present it "
    "as a standalone solution: do not mention the student, the attempt or the critique. Reason step by "
    "step and put the final answer within \\boxed{}.\n\n"
    "Question:\n{question}\n\n"
    "Student's first attempt:\n{initial_response}\n\n"
    "Critique:\n{critique}"
)

DIRECT_TEMPLATE = "{question}\n\nReason step by step and put the final answer within \\boxed{}."

DEFAULT_TEMPLATES: dict[str, str] = {
    "probe": PROBE_TEMPLATE,
    "critique": CRITIQUE_TEMPLATE,
    "refine": REFINE_TEMPLATE,
    "direct": DIRECT_TEMPLATE,
}

#: Critique/refine prompts that also show the source's reference answer (``teacher_sees_reference``; the
#: paper's teachers did not see it).
REFERENCE_TEMPLATES: dict[str, str] = {
    "critique": CRITIQUE_TEMPLATE.replace(
        "\n\nStudent's answer:",
        "\n\nReference answer (from the source, for checking; do not mention that you were given it):\n"
        "{reference_answer}\n\nStudent's answer:",
    ),
    "refine": REFINE_TEMPLATE.replace(
        "\n\nStudent's first attempt:",
        "\n\nReference answer (for checking your final answer; write your own solution):\n{reference_answer}"
        "\n\nStudent's first attempt:",
    ),
}


def default_template(stage: str, with_reference: bool = False) -> str:
    """The stage's default prompt; with the reference answer shown to the teacher when ``with_reference``."""
    return REFERENCE_TEMPLATES.get(stage, DEFAULT_TEMPLATES[stage]) if with_reference else DEFAULT_TEMPLATES[stage]


#: Placeholders a template may use (values come from the row being built).
PLACEHOLDERS: tuple[str, ...] = ("question", "reference_answer", "initial_response", "critique")

#: Placeholders each stage's template must contain.
REQUIRED_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "probe": ("question",),
    "critique": ("question", "initial_response"),
    "refine": ("question", "initial_response", "critique"),
    "direct": ("question",),
}

#: Placeholders each stage may use (the later ones do not exist yet when the stage runs).
AVAILABLE_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "probe": ("question", "reference_answer"),
    "critique": ("question", "reference_answer", "initial_response"),
    "refine": ("question", "reference_answer", "initial_response", "critique"),
    "direct": ("question", "reference_answer"),
}

_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


def check_template(stage: str, template: str) -> None:
    """Raise ``ValueError`` when ``template`` lacks a required placeholder or uses an unavailable one."""
    used = set(_PLACEHOLDER.findall(template))
    missing = [p for p in REQUIRED_PLACEHOLDERS[stage] if p not in used]
    if missing:
        raise ValueError(f"The {stage} template must contain {', '.join('{' + p + '}' for p in missing)}")
    unavailable = sorted(used - set(AVAILABLE_PLACEHOLDERS[stage]))
    if unavailable:
        raise ValueError(
            f"The {stage} template uses {unavailable}, which do not exist yet when the {stage} stage runs"
        )


def fill_template(template: str, values: Mapping[str, str | None]) -> str:
    """Replace each ``{placeholder}`` of :data:`PLACEHOLDERS` with its value (``None`` becomes empty)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1)) or "", template)
