"""Answer extraction and checking, shared by the eval tasks and the dataset builders.

One place decides whether a response's final answer matches a reference, so the builders' reference
check and the benchmark scores cannot disagree. Checking goes through lighteval's math extraction and
verification (``lighteval.metrics.utils``: LaTeX + plain-expression targets, then a symbolic/numeric
comparison with sympy), so ``\\frac{1}{2}``, ``\\dfrac12``, ``1/2`` and ``0.5`` all match.

Functions:

- :func:`extract_final_answer` -- the final answer as a string (last ``\\boxed{}``; fallbacks below).
- :func:`answers_match` -- does a response (or a bare answer) match a gold answer.
- :func:`normalize_gold` -- a gold in any supported style (``"42"``, ``"\\frac{1}{2}"``, GSM8K
  ``"... #### 42"``, a solution with ``\\boxed{}``) to the bare answer string.
- :func:`extract_choice_letter` -- the chosen letter of a multiple-choice response.
- :func:`has_verdict`, :func:`looks_like_critique`, :func:`ends_with_boxed_answer` -- format-drift
  detectors: does a response read as a critique of someone else's answer (CFT's failure mode) rather
  than as an answer, and does it end with a boxed final answer.

Timeouts: lighteval's parsing and comparison guard each step with ``signal.alarm``, which only works in
the main thread. :func:`answers_match` keeps those guards in the main thread; in any other thread (the
builders' concurrent clients) the guards become no-ops instead of raising (see
:func:`cgd.eval.compat.install_thread_safe_timeouts`). Every failure inside the check counts as "no
match": it never raises.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

logger = logging.getLogger(__name__)

__all__ = [
    "answers_match",
    "extract_boxed",
    "extract_choice_letter",
    "extract_final_answer",
    "ends_with_boxed_answer",
    "has_verdict",
    "looks_like_critique",
    "normalize_gold",
]

_BOX_COMMANDS = ("\\boxed", "\\fbox")
# Regexes here never put two quantifiers that can match the same characters side by side, so a long run
# of whitespace or punctuation in a degenerate generation cannot make them backtrack polynomially.
_GSM8K_ANSWER = re.compile(r"####[ \t]*([^\n]*)")
# "The final answer is 42", "Final Answer: 42", "Answer: 42" (last occurrence wins).
_ANCHORED_ANSWER = re.compile(r"answer[ \t]*(?:is\b|:)[ \t:]*([^\n]*)", re.IGNORECASE)


def _closing_braces(text: str) -> dict[int, int]:
    """Map each ``{`` index to the index of its matching ``}`` (one linear pass; unmatched ones absent)."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces allowed), or None.

    ``\\boxed 5`` (no braces, a single token) is accepted too. An unclosed last box is skipped in favour
    of the previous complete one. Linear in the length of the text.
    """
    if not text or ("\\boxed" not in text and "\\fbox" not in text):
        return None
    starts = sorted(
        (m.start(), cmd) for cmd in _BOX_COMMANDS for m in re.finditer(re.escape(cmd) + r"(?![A-Za-z])", text)
    )
    pairs: dict[int, int] | None = None
    for start, cmd in reversed(starts):
        i = start + len(cmd)
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            if pairs is None:
                pairs = _closing_braces(text)
            close = pairs.get(i)
            if close is not None:
                return text[i + 1 : close].strip()
        elif i > start + len(cmd):  # "\\boxed 5": one token after a space
            token = re.match(r"[^\s$.,;]+", text[i:])
            if token:
                return token.group(0)
    return None


def extract_final_answer(text: str) -> str | None:
    """The final answer of a response as a string, or None when it states none.

    Order: (1) the last ``\\boxed{...}``/``\\fbox{...}`` (nested braces); (2) a GSM8K-style
    ``#### 42`` line; (3) the last "final answer is ..." / "Answer: ..." phrase, with trailing
    ``$``/``.`` stripped. A bare last number is *not* used as a fallback: a response with no stated final
    answer yields None.
    """
    if not text:
        return None
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    gsm = [g.strip() for g in _GSM8K_ANSWER.findall(text) if g.strip()]
    if gsm:
        return gsm[-1]
    anchored = [a for a in _ANCHORED_ANSWER.findall(text) if a.strip()]
    if anchored:
        answer = anchored[-1].strip().rstrip(".").strip()
        answer = answer.strip("$").strip()
        return answer or None
    return None


def normalize_gold(gold: str) -> str:
    """A gold answer in any supported style as a bare answer string.

    ``"... #### 1,234"`` (GSM8K) -> ``"1234"``; a worked solution with ``\\boxed{x}`` -> ``"x"``;
    ``"$\\frac{1}{2}$"`` -> ``"\\frac{1}{2}"``; anything else is returned stripped.
    """
    gold = str(gold).strip()
    if "####" in gold:
        gold = gold.rsplit("####", 1)[1].strip()
        # GSM8K writes thousands separators; they are not decimal points.
        if re.fullmatch(r"-?[\d,]+(?:\.\d+)?", gold):
            gold = gold.replace(",", "")
        return gold
    boxed = extract_boxed(gold)
    if boxed is not None:
        return boxed
    if len(gold) >= 2 and gold.startswith("$") and gold.endswith("$"):
        gold = gold.strip("$").strip()
    return gold


@lru_cache(maxsize=1)
def _extraction_targets():
    """(pred_targets, gold_targets) as lighteval regex lists: boxed LaTeX first, then plain expressions."""
    from lighteval.metrics.utils.extractive_match_utils import (
        ExprExtractionConfig,
        LatexExtractionConfig,
        lazy_expr_regex,
        lazy_latex_regex,
    )
    from lighteval.utils.language import Language

    latex = LatexExtractionConfig(boxed_match_priority=0)
    expr = ExprExtractionConfig()
    targets = [
        (lazy_latex_regex(latex, Language.ENGLISH), latex),
        (lazy_expr_regex(expr, Language.ENGLISH), expr),
    ]
    return targets


def _parse(text: str, timeout_seconds: int) -> list:
    from lighteval.metrics.utils.extractive_match_utils import extract_target_from_pred

    return extract_target_from_pred(
        text,
        _extraction_targets(),
        fallback_mode="first_match",
        extraction_mode="any_match",
        timeout_seconds=timeout_seconds,
    )


def answers_match(prediction_text: str, gold: str, timeout_seconds: int = 5, precision: int = 6) -> bool:
    """True when the final answer in ``prediction_text`` equals ``gold`` (symbolically or numerically).

    ``prediction_text`` may be a whole response (its last ``\\boxed{}`` is preferred, then lighteval's
    anchored/plain extraction) or a bare answer. ``gold`` may be ``"42"``, ``"\\frac{1}{2}"``,
    ``"$x^2$"``, a GSM8K ``"... #### 42"`` answer or a solution containing ``\\boxed{}``. Never raises;
    each parse/compare step is bounded by ``timeout_seconds`` (main thread only, see module docstring).
    """
    if not prediction_text or gold is None or not str(gold).strip():
        return False
    from cgd.eval.compat import install_thread_safe_timeouts

    install_thread_safe_timeouts()
    try:
        from lighteval.metrics.utils.math_comparison import compare_gold_target

        gold_answer = normalize_gold(str(gold))
        # Boxing the gold makes LaTeX golds parse as LaTeX (plain numbers parse either way).
        gold_parsed = _parse(f"\\boxed{{{gold_answer}}}", timeout_seconds)
        if not gold_parsed:
            gold_parsed = [gold_answer]
        pred_parsed = _parse(prediction_text, timeout_seconds)
        if not pred_parsed:
            return False
        return bool(
            compare_gold_target(gold_parsed, pred_parsed, precision=precision, timeout_seconds=timeout_seconds)
        )
    except Exception as err:  # noqa: BLE001 - a checker must never crash a builder or an eval run
        logger.debug("answers_match failed on gold=%r: %s", gold, err)
        return False


def _letters(num_choices: int) -> str:
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: max(0, min(num_choices, 26))]


def extract_choice_letter(text: str, num_choices: int) -> str | None:
    """The option letter (``"A"``.. up to ``num_choices``) a response commits to, or None.

    Order: (1) the last ``\\boxed{}`` when it holds a letter (``\\boxed{C}``, ``\\boxed{(C)}``,
    ``\\boxed{\\text{C}}``, ``\\boxed{C) 42}``); (2) the last "answer is (C)" / "Answer: C" phrase;
    (3) a response that is only a letter, like ``"C"`` or ``"(C)."``. Lower-case letters count only
    inside a box or after an anchor.
    """
    if not text or num_choices <= 0:
        return None
    letters = _letters(num_choices)
    cls = f"[{letters}{letters.lower()}]"

    boxed = extract_boxed(text)
    if boxed is not None:
        inner = re.sub(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}", r"\1", boxed).strip()
        m = re.fullmatch(rf"\(?({cls})\)?(?:[\s.:)].*)?", inner, re.DOTALL)
        if m:
            return m.group(1).upper()

    # After an anchor: an upper-case letter, or a lower-case one only inside brackets ("answer is a
    # function" must not read as option A).
    anchor = re.compile(
        rf"(?i:answer|option|choice)(?:[ \t]*(?i:is)\b)?[\s:]*(?:(?i:option)[ \t]+)?\**"
        rf"(?:[\(\[]({cls})[\)\]]|([{letters}])(?![A-Za-z0-9]))"
    )
    hits = [(m.group(1) or m.group(2)) for m in anchor.finditer(text)]
    if hits:
        return hits[-1].upper()

    m = re.fullmatch(rf"\s*[\(\[]?([{letters}])[\)\]]?\.?\s*", text)
    if m:
        return m.group(1)
    return None


# --- format drift -------------------------------------------------------------------------------------

# The critic's verdict line the CGD/CFT teacher prompts ask for: "Conclusion: right" / "Conclusion: wrong"
# (markdown emphasis and brackets tolerated).
_VERDICT = re.compile(r"conclusion[ \t*]*:[ \t*\[]*(right|wrong)\b", re.IGNORECASE)
# Phrasing that grades someone else's work. Kept specific: a word problem about "a student" or a
# solution that says "this is correct" while checking its own arithmetic must not count.
_CRITIQUE_PHRASES = [
    re.compile(p, re.IGNORECASE | re.MULTILINE)
    for p in (
        r"\bthe\s+student(?:'s|\u2019s|s')\s+(?:initial\s+|original\s+|final\s+|proposed\s+)?"
        r"(?:answer|solution|response|work|reasoning|attempt|approach|calculation)",
        r"\bstudent'?s\s+initial\s+answer\b",
        r"\b(?:the|this)\s+(?:given\s+|provided\s+|proposed\s+|initial\s+|original\s+)?"
        r"(?:solution|response)\s+(?:is|was)\s+(?:incorrect|correct|wrong|flawed|right)\b",
        r"\b(?:the|this)\s+(?:given\s+|provided\s+|proposed\s+|initial\s+|original\s+)"
        r"answer\s+(?:is|was)\s+(?:incorrect|correct|wrong|flawed|right)\b",
        r"^[ \t]*(?:[#*]+[ \t]*)?critique[ \t]*(?:[#*]+[ \t]*)?:",
        r"\bthe\s+(?:solution|response)\s+(?:contains|has|makes)\s+(?:an?\s+)?(?:error|mistake)s?\b",
    )
]


def has_verdict(text: str) -> bool:
    """True when the text carries a ``Conclusion: right|wrong`` verdict line."""
    return bool(text) and _VERDICT.search(text) is not None


def looks_like_critique(text: str) -> bool:
    """True when the text reads as a critique of another answer: a verdict line or grading phrasing
    ("the student's answer ...", "the solution is incorrect", a "Critique:" header)."""
    if not text:
        return False
    if has_verdict(text):
        return True
    return any(p.search(text) for p in _CRITIQUE_PHRASES)


def ends_with_boxed_answer(text: str) -> bool:
    """True when the last non-empty line of the text holds a complete ``\\boxed{...}``."""
    if not text:
        return False
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return False
    # A display-math close ("\\]", "$$") on its own line belongs to the line before.
    tail = lines[-1]
    if tail.strip() in {"\\]", "$$", "$"} and len(lines) > 1:
        tail = lines[-2] + tail
    return extract_boxed(tail) is not None
