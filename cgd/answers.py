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

Bounded time, on any thread: a pathological answer (a boxed number with a million digits, ``9^{9^{9}}``) can keep
sympy busy for minutes inside one C call, where neither lighteval's ``signal.alarm`` guards (main thread only) nor
any Python-level check can interrupt it. :func:`answers_match` therefore parses and compares in a worker process
(one per calling process, started on first use, shared by its threads) and kills it when a call overruns
``3 * timeout_seconds + 1`` seconds (lighteval's three guarded steps: parse gold, parse prediction, compare); that call counts as "no match" and the next call starts a fresh worker. Every failure inside
the check counts as "no match": it never raises.

Numbers: a plain scientific gold such as Minerva Math's ``4.5e33`` is read as 4.5 × 10^33 (lighteval's LaTeX parser
alone reads it as 4.5·e·33, Euler's number), and numbers are compared relatively as well as to ``precision``
decimals (lighteval rounds both sides to 6 decimals, so every value below 5e-7 equals every other one).
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from cgd.verdict import parse_verdict

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
    "scientific_to_latex",
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


# "4.5e33", "-1.2E-5": a plain number in e-notation, alone.
_E_NOTATION = re.compile(r"\s*([-+]?\d+(?:\.\d*)?)[eE]([-+]?\d+)\s*")


def scientific_to_latex(answer: str) -> str:
    """``"4.5e33"`` -> ``"4.5\\times 10^{33}"``; anything that is not a lone e-notation number is returned as is.

    lighteval's LaTeX parser reads ``4.5e33`` as ``4.5*E*33`` (Euler's number), so Minerva Math's e-notation golds
    (58 of 272) could never match the ``\\times 10^{}`` form models write.
    """
    m = _E_NOTATION.fullmatch(answer)
    if m is None:
        return answer
    return f"{m.group(1)}\\times 10^{{{int(m.group(2))}}}"


def _relatively_equal(gold_parsed: list, pred_parsed: list, precision: int) -> bool:
    """False when the first parsed gold and prediction are both nonzero numbers further apart than
    ``10**-(precision-2)`` of their size. lighteval compares numbers rounded to ``precision`` decimals, so without
    this ``2.88\\times10^{-19}`` "equals" ``5\\times10^{-21}``; the check only ever vetoes a match."""
    from sympy import N

    if not gold_parsed or not pred_parsed:
        return True
    texts = {" ".join(x.split()) for x in gold_parsed if isinstance(x, str)}
    if any(isinstance(x, str) and " ".join(x.split()) in texts for x in pred_parsed):
        return True  # the same answer text: lighteval matched it as a string
    a, b = gold_parsed[0], pred_parsed[0]
    if not (getattr(a, "is_number", False) and getattr(b, "is_number", False)):
        return True
    a, b = N(a, 30), N(b, 30)
    if not (a.is_real and b.is_real) or a == 0 or b == 0:
        return True
    return bool(abs(a - b) <= 10 ** -(precision - 2) * max(abs(a), abs(b)))


def _prediction_for_parsing(text: str) -> str:
    """The prediction with an e-notation ``\\boxed{}`` answer rewritten as LaTeX (see :func:`scientific_to_latex`)."""
    boxed = extract_boxed(text)
    if boxed is not None and _E_NOTATION.fullmatch(boxed):
        return f"\\boxed{{{scientific_to_latex(boxed)}}}"
    return text


def match_in_process(prediction_text: str, gold: str, timeout_seconds: int = 5, precision: int = 6) -> bool:
    """:func:`answers_match` in the calling process, bounded only by lighteval's ``signal.alarm`` guards (main
    thread). The worker process runs this; call :func:`answers_match` instead."""
    if not prediction_text or gold is None or not str(gold).strip():
        return False
    try:
        from lighteval.metrics.utils.math_comparison import compare_gold_target

        gold_answer = scientific_to_latex(normalize_gold(str(gold)))
        # Boxing the gold makes LaTeX golds parse as LaTeX (plain numbers parse either way).
        gold_parsed = _parse(f"\\boxed{{{gold_answer}}}", timeout_seconds)
        if not gold_parsed:
            gold_parsed = [gold_answer]
        pred_parsed = _parse(_prediction_for_parsing(prediction_text), timeout_seconds)
        if not pred_parsed:
            return False
        if not compare_gold_target(gold_parsed, pred_parsed, precision=precision, timeout_seconds=timeout_seconds):
            return False
        return _relatively_equal(gold_parsed, pred_parsed, precision)
    except Exception as err:  # noqa: BLE001 - a checker must never crash a builder or an eval run
        logger.debug("answers_match failed on gold=%r: %s", gold, err)
        return False


class _Worker:
    """One checking process per calling process, shared by its threads (a lock keeps one request in flight).

    Requests and answers are JSON lines over the worker's stdin/stdout. A call that overruns its deadline kills the
    worker (the only way to stop sympy inside a C call); the next call starts a new one.
    """

    STARTUP_SECONDS = 180.0  # importing sympy + lighteval's parsers on a loaded 2-core machine

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.owner = 0
        self.timeouts = 0

    def _start(self) -> None:
        import cgd

        env = dict(os.environ)
        root = str(Path(cgd.__file__).resolve().parents[1])  # importable even when the package is not installed
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from cgd.answers import _serve; _serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.owner = os.getpid()
        if self._read_line(self.STARTUP_SECONDS) != b"ready":
            self._kill()
            raise RuntimeError("the answer-checking worker process did not start")

    def _read_line(self, seconds: float) -> bytes | None:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], seconds)
        if not ready:
            return None
        return self.proc.stdout.readline().strip()

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def check(self, prediction_text: str, gold: str, timeout_seconds: float, precision: int) -> bool:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None or self.owner != os.getpid():
                self.proc = None  # a forked child never shares its parent's worker
                self._start()
            request = {"prediction": prediction_text, "gold": gold, "timeout": timeout_seconds, "precision": precision}
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
            # lighteval bounds each of its three steps (parse gold, parse prediction, compare) by timeout_seconds
            # where it can; the process is killed once all three could have run out.
            line = self._read_line(3 * timeout_seconds + 1)
            if line is None:
                self.timeouts += 1
                self._kill()
                logger.warning(
                    "answer check exceeded %ss (gold %r); counted as no match (%d so far)",
                    3 * timeout_seconds + 1,
                    gold[:60],
                    self.timeouts,
                )
                return False
            return line == b"1"


_WORKER = _Worker()
atexit.register(_WORKER._kill)


def _serve() -> None:
    """The worker's loop: one JSON request per stdin line, ``1``/``0`` per stdout line."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # anything a library prints must not corrupt the protocol
    logging.disable(logging.CRITICAL)
    _parse("\\boxed{1}", 5)  # import and compile the parsers before saying ready
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        result = match_in_process(
            request["prediction"], request["gold"], int(request["timeout"]), request["precision"]
        )
        out.write(b"1\n" if result else b"0\n")
        out.flush()


def answers_match(prediction_text: str, gold: str, timeout_seconds: float = 5, precision: int = 6) -> bool:
    """True when the final answer in ``prediction_text`` equals ``gold`` (symbolically or numerically).

    ``prediction_text`` may be a whole response (its last ``\\boxed{}`` is preferred, then lighteval's
    anchored/plain extraction) or a bare answer. ``gold`` may be ``"42"``, ``"\\frac{1}{2}"``, ``"$x^2$"``,
    ``"4.5e33"``, a GSM8K ``"... #### 42"`` answer or a solution containing ``\\boxed{}``. Never raises; each step is
    bounded by ``timeout_seconds`` and the whole check by ``3 * timeout_seconds + 1`` on any thread (it runs in a
    worker process, see the module docstring).
    """
    if not prediction_text or gold is None or not str(gold).strip():
        return False
    try:
        return _WORKER.check(str(prediction_text), str(gold), max(1, int(timeout_seconds)), precision)
    except (OSError, RuntimeError, ValueError) as err:
        logger.warning("answer-checking worker unavailable (%s); checking in process", err)
        return match_in_process(prediction_text, str(gold), int(timeout_seconds), precision)


def install_thread_safe_timeouts() -> None:
    """Make lighteval's ``signal.alarm`` guards in math extraction/comparison a no-op off the main thread (where
    they would raise ``ValueError``) instead of an error. For lighteval's own metrics run in threads; cgd's checker
    bounds its calls with the worker process instead. Idempotent."""
    from lighteval.metrics.utils import extractive_match_utils, math_comparison

    for module in (extractive_match_utils, math_comparison):
        current = module.timeout
        if not getattr(current, "_cgd_thread_aware", False):
            module.timeout = _thread_aware_timeout(current)


def _thread_aware_timeout(original: Callable[..., Callable]) -> Callable[..., Callable]:
    @functools.wraps(original)
    def timeout(timeout_seconds: int = 10) -> Callable[[Callable], Callable]:
        signal_decorator = original(timeout_seconds)

        def decorator(func: Callable) -> Callable:
            guarded = signal_decorator(func)

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if threading.current_thread() is threading.main_thread():
                    return guarded(*args, **kwargs)
                return func(*args, **kwargs)

            return wrapper

        return decorator

    timeout._cgd_thread_aware = True  # type: ignore[attr-defined]
    return timeout


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
    """True when the text carries a verdict line the dataset builders would parse (:func:`cgd.verdict.parse_verdict`:
    ``Conclusion: right``, ``**Conclusion:** Wrong``, ``Conclusion - correct``, a full-width colon ...)."""
    return parse_verdict(text) != "unparsed"


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
