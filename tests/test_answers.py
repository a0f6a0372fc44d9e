"""cgd.answers: final-answer extraction, symbolic answer matching, choice letters, format drift."""

from __future__ import annotations

import threading
import time

import pytest

from cgd.answers import (
    answers_match,
    ends_with_boxed_answer,
    extract_boxed,
    extract_choice_letter,
    extract_final_answer,
    has_verdict,
    looks_like_critique,
    normalize_gold,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so the total is \boxed{42}.", "42"),
        (r"first \boxed{1} then \boxed{\frac{a}{b^{2}}} end", r"\frac{a}{b^{2}}"),
        (r"\fbox{3}", "3"),
        (r"\boxed 5.", "5"),
        (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"\left( 3, \frac{\pi}{2} \right)"),
        (r"\boxed{7} and an unclosed \boxed{8", "7"),
        ("Step 1.\n#### 1,234", "1,234"),
        ("Therefore, the final answer is $7$.", "7"),
        ("Final Answer: 12", "12"),
        ("no stated answer, just 17 somewhere", None),
        ("", None),
    ],
)
def test_extract_final_answer(text, expected):
    assert extract_final_answer(text) == expected


def test_extract_boxed_is_linear_on_degenerate_text():
    start = time.perf_counter()
    assert extract_boxed(r"\boxed{" * 5000) is None
    assert extract_final_answer(" " * 50_000) is None
    assert not looks_like_critique(" " * 50_000 + "critique")
    assert extract_choice_letter("answer" + " " * 50_000 + "Z", 4) is None
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    ("gold", "expected"),
    [
        ("Natalia sold 48/2 = 24 clips.\n#### 72", "72"),
        ("#### 1,234", "1234"),
        (r"The answer is $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"$x^2$", "x^2"),
        (" 42 ", "42"),
    ],
)
def test_normalize_gold(gold, expected):
    assert normalize_gold(gold) == expected


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        (r"The answer is \boxed{42}.", "42"),
        (r"\boxed{\frac{1}{2}}", "0.5"),
        (r"\boxed{0.5}", r"\frac{1}{2}"),
        (r"\boxed{\dfrac{1}{2}}", "1/2"),
        (r"\boxed{\dfrac12}", r"\frac{1}{2}"),
        (r"\boxed{1/2}", r"\tfrac{1}{2}"),
        (r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{1}{\sqrt{2}}"),
        (r"\boxed{(x+1)^2}", "x^2+2x+1"),
        (r"\boxed{10\%}", "0.1"),
        (r"\boxed{1,234}", "Work...\n#### 1,234"),
        ("She makes 18 dollars.\n#### 18", "#### 18"),
        (r"so $\boxed{(1, 2)}$", "(1,2)"),
        (r"first guess \boxed{3}, but actually \boxed{4}", "4"),
        ("42", "42"),
    ],
)
def test_answers_match_equivalent_forms(prediction, gold):
    assert answers_match(prediction, gold)


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        (r"The answer is \boxed{41}.", "42"),
        (r"\boxed{\frac{1}{3}}", "0.5"),
        (r"first guess \boxed{4}, but actually \boxed{3}", "4"),
        (r"\boxed{\pi}", "3.14"),
        ("I am not sure.", "42"),
        ("", "42"),
        (r"\boxed{42}", ""),
    ],
)
def test_answers_match_rejects_wrong(prediction, gold):
    assert not answers_match(prediction, gold)


def test_answers_match_works_off_the_main_thread():
    results = []
    worker = threading.Thread(target=lambda: results.append(answers_match(r"\boxed{\frac{3}{4}}", "0.75")))
    worker.start()
    worker.join(timeout=60)
    assert results == [True]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"... so the answer is \boxed{C}", "C"),
        (r"\boxed{(B)}", "B"),
        (r"\boxed{\text{D}}", "D"),
        (r"\boxed{b}", "B"),
        ("The answer is (A).", "A"),
        ("Answer: D", "D"),
        ("Answer:\n**B**", "B"),
        ("The correct option is (c)", "C"),
        ("C", "C"),
        ("(B).", "B"),
        ("the answer is a function of x", None),
        ("The answer is E", None),  # only four options
        (r"\boxed{42}", None),
        ("I think (b) but I am unsure", None),
    ],
)
def test_extract_choice_letter(text, expected):
    assert extract_choice_letter(text, 4) == expected


def test_extract_choice_letter_ten_options():
    assert extract_choice_letter(r"\boxed{J}", 10) == "J"
    assert extract_choice_letter(r"\boxed{J}", 4) is None


@pytest.mark.parametrize(
    "text",
    [
        "The student's answer is 12, but the correct total is 14.\nConclusion: wrong",
        "Conclusion: right",
        "**Conclusion:** wrong",
        "The student's initial answer forgot to carry the one.",
        "The given solution is incorrect because step 2 divides by zero.",
        "Critique:\nStep 1 is fine.",
        "The solution contains an error in the last step.",
        "The provided answer is correct.",
    ],
)
def test_critique_positives(text):
    assert looks_like_critique(text)


@pytest.mark.parametrize(
    "text",
    [
        r"Each student gets 3 pencils, so 5 students get 15. \boxed{15}",
        r"Let x be the number of apples. Then 2x = 10, so x = 5. Checking: 2 * 5 = 10, correct. \boxed{5}",
        "The solution to the equation is x = 3.",
        "A student has 4 books and a teacher has 6.",
        "In conclusion, the area is 12.",
        "",
    ],
)
def test_critique_negatives(text):
    assert not looks_like_critique(text)


def test_verdict_only_with_conclusion_line():
    assert has_verdict("Conclusion: wrong")
    assert has_verdict("conclusion: [right]")
    assert not has_verdict("In conclusion, this is right.")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Step 1: 2+2=4.\nThe final answer is \\boxed{4}.", True),
        ("So\n\\[\n\\boxed{4}\n\\]", True),
        ("\\boxed{4}\n\nLet me double-check with another method that never ends", False),
        ("The answer is 4.", False),
        ("", False),
    ],
)
def test_ends_with_boxed_answer(text, expected):
    assert ends_with_boxed_answer(text) is expected


# --- one verdict parser ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Conclusion: correct",
        "Conclusion - wrong",
        "conclusion： right",
        "**Conclusion:** Incorrect",
        "### Conclusion - **RIGHT**",
    ],
)
def test_drift_metrics_read_every_verdict_the_builder_reads(text):
    from cgd.verdict import parse_verdict

    assert parse_verdict(text) in {"right", "wrong"}
    assert has_verdict(text) and looks_like_critique(text)


def test_one_verdict_parser():
    import cgd.verdict

    with pytest.raises(ImportError):
        __import__("datasets_builders.verdict")
    assert not has_verdict("Conclusion: the answer is wrong")  # not guessed at, as in the builder
    assert cgd.verdict.parse_verdict("Conclusion: the answer is wrong") == "unparsed"


# --- e-notation and relative comparison ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("gold", "latex"),
    [
        ("4.5e33", r"4.5 \times 10^{33}"),
        ("3.83e35", r"3.83 \times 10^{35}"),
        ("1e-5", r"10^{-5}"),
        ("2.88e-19", r"2.88\times10^{-19}"),
        ("1.325e-27", r"1.325 \times 10^{-27}"),
        ("6.5e-2", "0.065"),
    ],
)
def test_e_notation_gold_matches_its_latex_form(gold, latex):
    assert answers_match(rf"The answer is \boxed{{{latex}}}.", gold)
    assert answers_match(rf"\boxed{{{gold}}}", gold)  # a model that writes e-notation too
    mantissa, exponent = gold.split("e")
    ten_times = rf"\boxed{{{mantissa} \times 10^{{{int(exponent) + 1}}}}}"
    assert not answers_match(ten_times, gold)


def test_tiny_values_compare_relatively():
    assert not answers_match(r"\boxed{5\times10^{-21}}", r"2.88\times10^{-19}")
    assert not answers_match(r"\boxed{0.000000001}", "0.000000002")
    assert answers_match(r"\boxed{0.333333}", r"\frac{1}{3}")  # the 6-decimal rounding still holds
    assert answers_match(r"\boxed{2.88\times10^{-19}}", "2.88e-19")


def test_minerva_e_notation_golds(shared_data):
    """Every lone e-notation gold of the local Minerva Math file matches its LaTeX scientific form, none 10x off."""
    import json
    import re

    rows = [json.loads(line) for line in (shared_data / "eval" / "minerva_math" / "test.jsonl").open()]
    sci = re.compile(r"\s*([-+]?\d+(?:\.\d+)?)[eE]([-+]?\d+)\s*")
    golds = [str(r["answer"]) for r in rows if sci.fullmatch(str(r["answer"]))]
    assert len(golds) >= 50
    matched = off = 0
    for gold in golds:
        mantissa, exponent = sci.fullmatch(gold).groups()
        matched += answers_match(rf"\boxed{{{mantissa} \times 10^{{{int(exponent)}}}}}", gold)
        off += answers_match(rf"\boxed{{{mantissa} \times 10^{{{int(exponent) + 1}}}}}", gold)
    assert matched >= 0.9 * len(golds) and off == 0


# --- every call bounded, on any thread ---------------------------------------------------------------


@pytest.mark.parametrize("answer", [r"9^{9^{9}}", "9" * 1_000_000])
def test_answer_check_is_bounded_on_any_thread(answer):
    results: list[bool] = []
    start = time.perf_counter()
    thread = threading.Thread(target=lambda: results.append(answers_match(rf"\boxed{{{answer}}}", "3", 3)))
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive() and results == [False]
    assert time.perf_counter() - start < 25  # 3 x 3 + 1 s deadline; a worker restart is the rest
    assert answers_match(r"\boxed{3}", "3")  # the next call works (a fresh worker)


def test_relative_check_keeps_string_matches():
    """lighteval parses this gold to 2/3 and the same boxed text to 1/3, then matches the strings."""
    gold = r"\frac{1}{3} E_{1}+\frac{2}{3} E_{2}"
    assert answers_match(rf"The answer is \boxed{{{gold}}}.", gold, timeout_seconds=30)
