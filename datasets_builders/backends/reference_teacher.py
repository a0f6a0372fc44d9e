"""A rule-based teacher: critiques and refines drafts against a source's reference worked solutions.

No model runs. For sources whose reference answer is a step-by-step worked solution (GSM8K's
``<<48/2=24>>`` steps and ``#### 72``; the embedded question set's ``solution`` column; any text with
``a op b = c`` steps ending in ``\\boxed{}``), each stage is written from the row itself:

- **critique**: the draft's final answer is checked with :func:`cgd.answers.answers_match` (the checker the
  evaluation uses). Where it is wrong, the critique names the first intermediate result of the worked
  solution that the draft gets wrong (an equation on the step's numbers, or one whose left side is worth the
  step's value, with another result) or leaves out
  (the value never appears), and states the correct step; where it is right, it says so (and names a
  wrong step the draft made on the way, if any). It ends with ``Conclusion: right|wrong``.
- **refine**: the draft itself where its final answer is right and no step of it is wrong (with a
  ``\\boxed{}`` final line added when it lacks one); otherwise the worked solution, ending in ``\\boxed{}``.
- **direct**: the worked solution.

It is a backend (``backend: reference``) so it checkpoints, resumes and is reported like any teacher; it
reads the row values the stage may use from :attr:`Request.row` instead of the rendered prompt. A critique
or refined answer is only as good as the reference: rows without one fail the stage before anything is
written. Token counts are whitespace-separated words (there is no tokenizer).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from datasets_builders.backends.base import Backend, BackendError, Completion, Request, ResultCallback, Sampling

#: The model name of this teacher in rows' ``teacher_model``, the card and the build report.
MODEL_NAME = "rule-based-reference-teacher"
TEACHER_STAGES = ("critique", "refine", "direct")

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_OP = r"[+\-−–×*/÷·]"
_OPERAND = rf"\(*\s*\$?(?:{_NUM})%?\s*\)*"
# "a op b [op c ...] = result", not followed by a further operator (so "3x = 23 − 5 = 18" yields "23 − 5 = 18").
_EQUATION = re.compile(
    rf"(?<![\w.,])(?P<expr>{_OPERAND}(?:\s*{_OP}\s*{_OPERAND})+)\s*=\s*(?P<result>\$?-?(?:{_NUM}))(?![\d,.]*\d)"
    rf"(?!\s*{_OP}\s*[\d($])"
)
_NUMBER = re.compile(rf"(?<![\w.])-?(?:{_NUM})(?![\d])")
_CALC = re.compile(r"<<([^<>=]*)=([^<>]*)>>")  # GSM8K calculator annotations
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z$(\d])|\n+")
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def to_value(number: str) -> Fraction | None:
    """``"1,234"`` / ``"$20"`` / ``"2.5"`` as an exact number (None when it is not one)."""
    text = number.replace(",", "").replace("$", "").strip()
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def _values(text: str) -> list[Fraction]:
    return [v for v in (to_value(m.group(0)) for m in _NUMBER.finditer(text)) if v is not None]


def evaluate(expression: str) -> Fraction | None:
    """The exact value of a plain arithmetic expression (``"$80 × 25 / 100"``), or None if it is not one."""
    if "%" in expression:  # "25% × 80" is not arithmetic on the written numbers
        return None
    text = expression.replace("$", "").replace(",", "")
    for sign, py in (("×", "*"), ("·", "*"), ("÷", "/"), ("−", "-"), ("–", "-")):
        text = text.replace(sign, py)

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return Fraction(str(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(type(node).__name__)

    try:
        return walk(ast.parse(text.strip(), mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None


@dataclass(frozen=True)
class Step:
    """One intermediate result of a worked solution: ``expression = result`` inside ``sentence``."""

    index: int  # 1-based position in the solution
    expression: str | None  # None for the closing "the answer is" step when no equation gives it
    result: str
    sentence: str

    @property
    def value(self) -> Fraction | None:
        return to_value(self.result)

    @property
    def operands(self) -> tuple[Fraction, ...]:
        return tuple(sorted(_values(self.expression or "")))

    @property
    def equation(self) -> str:
        return f"{self.expression} = {self.result}" if self.expression else self.result


@dataclass(frozen=True)
class WorkedSolution:
    """A reference worked solution: its display text (ending in ``\\boxed{answer}``), answer and steps."""

    text: str
    answer: str
    steps: tuple[Step, ...]


def _clean(text: str) -> str:
    return re.sub(r"[ \t]+", " ", _CALC.sub("", text)).strip()


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def parse_worked_solution(reference: str) -> WorkedSolution:
    """Steps, answer and display text of a reference answer (GSM8K, ``\\boxed{}`` solutions, bare answers)."""
    from cgd.answers import extract_boxed, extract_final_answer, normalize_gold

    reference = str(reference).strip()
    body = reference.rsplit("####", 1)[0] if "####" in reference else reference
    steps: list[Step] = []
    for raw in _sentences(body):
        sentence = _clean(raw)
        calcs = _CALC.findall(raw)
        found = (
            [(expr.strip(), res.strip()) for expr, res in calcs]
            if calcs
            else [(m.group("expr").strip(), m.group("result")) for m in _EQUATION.finditer(sentence)]
        )
        for expr, res in found:
            if to_value(res) is not None:
                steps.append(Step(len(steps) + 1, expr, res, sentence))
    if "####" in reference or extract_boxed(reference) is not None:
        answer = normalize_gold(reference)
    else:  # "The answer is: 5" (MetaMathQA), else the last step's result, else a bare answer
        answer = extract_final_answer(reference) or (
            steps[-1].result.lstrip("$") if steps else normalize_gold(reference)
        )
    final = to_value(answer)
    if not steps or final is None or steps[-1].value != final:
        steps.append(Step(len(steps) + 1, None, answer, f"The answer is {answer}."))
    text = _clean(body)
    if extract_boxed(text) is None:
        text = f"{text}\nThe answer is \\boxed{{{answer}}}." if text and text != answer else f"\\boxed{{{answer}}}"
    return WorkedSolution(text, answer, tuple(steps))


@dataclass(frozen=True)
class Judgement:
    """What the teacher found in one draft."""

    right: bool  # the draft's final answer matches the reference (cgd.answers.answers_match)
    stated_answer: str | None  # the draft's stated final answer (cgd.answers.extract_final_answer)
    step: Step | None  # the first step the draft gets wrong or leaves out (for a right draft: gets wrong)
    kind: str | None  # "wrong" | "missing" | "final" (every step present, but the final answer is not)
    draft_equation: str | None  # the draft's own version of a wrong step
    last_result: str | None = None  # the draft's last number, when it states no final answer


def _draft_equations(draft: str) -> list[tuple[str, str, tuple[Fraction, ...]]]:
    return [
        (m.group("expr").strip(), m.group("result"), tuple(sorted(_values(m.group("expr")))))
        for m in _EQUATION.finditer(draft)
    ]


def judge(question: str, draft: str, solution: WorkedSolution) -> Judgement:
    """Check a draft against the worked solution: verdict, and the first step it gets wrong or leaves out."""
    from dataclasses import replace

    judgement = _judge(question, draft, solution)
    if judgement.stated_answer is None:
        judgement = replace(judgement, last_result=_last_number(draft))
    return judgement


def _judge(question: str, draft: str, solution: WorkedSolution) -> Judgement:
    from cgd.answers import answers_match, extract_final_answer

    draft = draft or ""
    right = answers_match(draft, solution.answer) if draft.strip() else False
    stated = extract_final_answer(draft)
    equations = _draft_equations(draft)
    results = {to_value(res) for _, res, _ in equations}
    numbers = set(_values(draft))
    question_numbers = set(_values(question or ""))
    for step in solution.steps:
        for expr, res, operands in equations:
            if to_value(res) == step.value:
                continue
            same_numbers = step.expression is not None and operands == step.operands
            if same_numbers or (step.value is not None and evaluate(expr) == step.value):  # a slip on this step
                return Judgement(right, stated, step, "wrong", f"{expr} = {res}")
        if right:
            continue  # a right draft may skip steps; only a step it gets wrong is worth naming
        value = step.value
        if value is None:
            continue
        present = value in results or (value in numbers and value not in question_numbers)
        if not present:
            return Judgement(right, stated, step, "missing", None)
    if right:
        return Judgement(True, stated, None, None, None)
    return Judgement(False, stated, solution.steps[-1], "final", None)


def _last_number(draft: str) -> str | None:
    found = _NUMBER.findall(draft or "")
    return found[-1] if found else None


def _step_name(step: Step, total: int) -> str:
    if step.expression is None:
        return "the final answer"
    return f'step {step.index} of {total} of the solution, "{step.sentence.rstrip(".")}"'


def write_critique(judgement: Judgement, solution: WorkedSolution) -> str:
    """The critique: the verdict's reason, the first wrong or missing step and its correct form, the verdict."""
    total = len(solution.steps)
    step, lines = judgement.step, []
    if judgement.right:
        lines.append(f"The student's final answer, {solution.answer}, is correct.")
        if step is not None:
            lines.append(
                f"One step of the reasoning is wrong, though. In {_step_name(step, total)}, the student writes "
                f"{judgement.draft_equation}, but the correct step is {step.equation}."
            )
        else:
            lines.append("The intermediate results the student states agree with a correct solution.")
        return "\n".join([*lines, "Conclusion: right"])
    if judgement.stated_answer is None:
        last = f" (its last result is {judgement.last_result})" if judgement.last_result else ""
        lines.append(f"The student does not state a final answer{last}; the correct answer is {solution.answer}.")
    else:
        lines.append(
            f"The student's final answer, {judgement.stated_answer}, is wrong; the correct answer is "
            f"{solution.answer}."
        )
    if judgement.kind == "wrong":
        lines.append(
            f"The first mistake is in {_step_name(step, total)}. The student writes {judgement.draft_equation}, "
            f"but the correct step is {step.equation}. Everything after it builds on the wrong value."
        )
    elif judgement.kind == "missing" and step is not None:
        lines.append(
            f"The first step the student misses is {_step_name(step, total)}. The correct step is "
            f"{step.equation}, and the student never gets the value {step.result}."
        )
    elif step is not None:
        lines.append(
            f"The student's intermediate results agree with the solution, but the final answer does not follow "
            f"from them: the result of the last step is {step.result}."
        )
    return "\n".join([*lines, "Conclusion: wrong"])


def write_refined(draft: str, judgement: Judgement, solution: WorkedSolution) -> str:
    """The draft where it is right and sound (boxed answer added if missing), else the worked solution."""
    from cgd.answers import ends_with_boxed_answer

    if judgement.right and judgement.step is None:
        text = draft.strip()
        return text if ends_with_boxed_answer(text) else f"{text}\n\nThe answer is \\boxed{{{solution.answer}}}."
    return solution.text


def stage_model(stage: str, model: str | None) -> str:
    """The model name of a stage run by this teacher; refuses the student's stage and another model name."""
    if stage not in TEACHER_STAGES:
        raise ValueError(
            f"The {stage} stage cannot use the reference backend (a teacher for {', '.join(TEACHER_STAGES)}): "
            f"set `{stage}_backend` to the student's backend"
        )
    if model not in (None, MODEL_NAME):
        raise ValueError(
            f"`{stage}_model` is {model!r}, but the {stage} stage runs the rule-based reference teacher "
            f"(backend: reference), named {MODEL_NAME!r}: unset `{stage}_model`"
        )
    return MODEL_NAME


class ReferenceTeacherBackend(Backend):
    """The rule-based teacher for one stage (critique, refine or direct)."""

    name = "reference"

    def __init__(self, stage: str) -> None:
        if stage not in TEACHER_STAGES:
            raise ValueError(f"The reference teacher writes critiques and answers, not the {stage} stage")
        self.stage = stage

    def respond(self, request: Request) -> str:
        """The stage's output for one row (deterministic)."""
        solution = parse_worked_solution(request.row["reference_answer"])
        if self.stage == "direct":
            return solution.text
        draft = request.row.get("initial_response") or ""
        judgement = judge(request.row.get("question") or "", draft, solution)
        if self.stage == "critique":
            return write_critique(judgement, solution)
        return write_refined(draft, judgement, solution)

    def generate(self, requests: Sequence[Request], sampling: Sampling, on_result: ResultCallback) -> None:
        missing = [r.id for r in requests if not str(r.row.get("reference_answer") or "").strip()]
        if missing:
            raise BackendError(
                f"The reference teacher needs a reference worked solution for every row; {len(missing)} rows have "
                f"none (e.g. {missing[:3]}). Set `answer_column` to the source's worked-solution column "
                "(GSM8K: answer, the embedded question set: solution) or use an LLM teacher."
            )
        for request in requests:
            text = self.respond(request)
            completion = Completion(text, "stop", len(text.split()), 0)
            on_result(request, [completion] * sampling.n)
