"""The embedded question set: answers recomputed independently from the question text; disjoint splits."""

from __future__ import annotations

import json
import re
from collections import Counter
from fractions import Fraction

import pytest

from cgd.demo import questions


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]


def _solve_linear(text: str) -> Fraction:
    a, b, c = (int(v) for v in re.search(r"(\d+)x \+ (\d+) = (\d+)", text).groups())
    return Fraction(c - b, a)


# Each recomputation reads the numbers back out of the question, in the order the text states them.
RECOMPUTE = {
    "multi_step": lambda n: (n[0] + n[1]) * n[2] - n[3],
    "two_step": lambda n: n[0] * n[1] + n[2],
    "apples": lambda n: n[0] + n[1] * n[2] - n[3],
    "money": lambda n: n[4] - (n[0] * n[2] + n[1] * n[3]),
    "time": lambda n: n[2] * (60 * n[0] + n[1]),
    "rates": lambda n: n[0] * n[1] + n[2] * n[3],
    "percentage": lambda n: Fraction(n[0] * (100 - n[1]), 100),
    "percent_of": lambda n: Fraction(n[0] * n[1], 100),
    "sharing": lambda n: Fraction(n[0] + n[1], n[2]),
}


def _recompute(row: dict) -> Fraction:
    if row["category"] == "equation":
        return _solve_linear(row["question"])
    return Fraction(RECOMPUTE[row["category"]](_numbers(row["question"])))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_answers_are_correct_whole_numbers(seed):
    splits = questions.generate_splits(num_train=300, num_eval=100, seed=seed)
    for row in splits["train"] + splits["eval"]:
        expected = _recompute(row)
        assert expected.denominator == 1 and expected >= 0, row
        assert row["answer"] == str(int(expected)), row


def test_money_question_numbers_are_in_order():
    # The money recomputation assumes the bill is the last number; check the template really says so.
    import random

    for i in range(50):
        text, answer, _ = questions.money(random.Random(i))
        n = _numbers(text)
        assert len(n) == 5 and answer == n[4] - (n[0] * n[2] + n[1] * n[3]) and answer > 0


_EQUATION = re.compile(r"((?:\$?\d+ [-+−×/] )+\$?\d+) = \$?(\d+)")


def _check_steps(solution: str) -> int:
    """Every ``a op b [op c] = d`` written in the solution holds; returns how many were checked."""
    checked = 0
    for left, right in _EQUATION.findall(solution):
        expr = left.replace("$", "").replace("×", "*").replace("−", "-")
        assert Fraction(eval(expr)) == int(right), (left, right, solution)  # noqa: S307 - digits and operators only
        checked += 1
    return checked


@pytest.mark.parametrize("seed", [0, 5])
def test_worked_solutions_are_right_and_end_with_the_boxed_answer(seed):
    rows = questions.generate_splits(num_train=200, num_eval=50, seed=seed)
    for row in rows["train"] + rows["eval"]:
        assert row["solution"].endswith(f"The answer is \\boxed{{{row['answer']}}}."), row
        assert _check_steps(row["solution"]) >= 1, row


def test_the_step_checker_catches_a_wrong_step():
    with pytest.raises(AssertionError):
        _check_steps("First 14 + 18 = 33. The answer is \\boxed{33}.")


def test_splits_are_disjoint_and_deterministic():
    a = questions.generate_splits(num_train=400, num_eval=120, seed=3)
    b = questions.generate_splits(num_train=50, num_eval=120, seed=3)
    train_q = {r["question"] for r in a["train"]}
    eval_q = [r["question"] for r in a["eval"]]
    assert len(set(eval_q)) == len(eval_q) == 120
    assert len(train_q) == len(a["train"]) == 400
    assert not train_q & set(eval_q)
    assert a["eval"] == b["eval"], "the eval split must not depend on --num_train"
    assert a["train"][:50] == b["train"]
    assert questions.generate_splits(10, 10, seed=4)["eval"] != a["eval"][:10]
    ids = [r["id"] for r in a["train"] + a["eval"]]
    assert len(set(ids)) == len(ids)


def test_every_template_is_used():
    rows = questions.generate_splits(num_train=200, num_eval=0, seed=0)["train"]
    counts = Counter(r["category"] for r in rows)
    assert set(counts) == set(questions.TEMPLATES)
    assert min(counts.values()) >= 10


def test_cli_writes_jsonl(tmp_path):
    questions.main(["--output_dir", str(tmp_path), "--num_train", "12", "--num_eval", "5", "--seed", "2"])
    train = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert len(train) == 12 and len(evals) == 5
    assert set(train[0]) == {"id", "question", "answer", "solution", "category"}
    assert not list(tmp_path.glob("*.tmp"))


def test_eval_split_feeds_the_cgd_arith_lighteval_task(tmp_path, monkeypatch):
    import importlib

    folder = tmp_path / "arith"
    questions.write_splits(tmp_path / "q", num_train=4, num_eval=6, seed=0)
    folder.mkdir()
    (folder / "test.jsonl").write_text((tmp_path / "q" / "eval.jsonl").read_text())
    monkeypatch.setenv("CGD_EVAL_ARITH_PATH", str(folder))
    module = importlib.reload(importlib.import_module("eval_tasks.embedded_tasks"))
    task = module.cgd_arith
    assert (
        task.name == "cgd_arith" and task.hf_repo == str(folder.resolve()) and list(task.evaluation_splits) == ["test"]
    )
    assert "cgd_gsm8k" in {t.name for t in module.TASKS_TABLE}
    row = json.loads((folder / "test.jsonl").read_text().splitlines()[0])
    doc = task.prompt_function(row, "cgd_arith")
    assert row["question"] in doc.query and "\\boxed{}" in doc.query
    assert doc.get_golds() == [row["answer"]]


def test_cli_writes_both_splits_and_refuses_unknown_keys(tmp_path, capsys):
    questions.main(["--output_dir", str(tmp_path), "--num_train", "3", "--num_eval", "2", "--seed", "4"])
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and rows == questions.generate_splits(3, 2, 4)["train"]
    with pytest.raises(SystemExit, match="'num_trains' \\(did you mean 'num_train'\\?\\)"):
        questions.main(["--num_trains", "3"])
    with pytest.raises(SystemExit, match="unknown key"):  # abbreviations are not keys
        questions.main(["--num_tr", "3"])
