"""eval_tasks/cgd_tasks.py: every task loads local rows and builds docs; metrics score known strings."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TASKS_FILE = REPO_ROOT / "eval_tasks" / "cgd_tasks.py"
SHARED_INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."

# A few rows per task, in the field layouts of ../shared/data and of the Hub datasets.
ROWS: dict[str, list[dict]] = {
    "math500": [
        {"problem": "What is $1/2 + 1/4$?" + SHARED_INSTRUCTION, "answer": "\\frac{3}{4}"},
        {"problem": "Compute $2+2$.", "solution": "2+2=\\boxed{4}", "answer": "4"},
    ],
    "minerva_math": [{"question": "Find the speed of light in m/s to 1 sig fig.", "answer": "3e8"}],
    "gsm8k": [
        {"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "3+4=<<3+4=7>>7\n#### 7"},
        {"question": "A farm has 1,200 cows and buys 34 more. How many?", "answer": "#### 1,234"},
    ],
    "olympiadbench": [{"question": "Find the smallest prime above 5.", "final_answer": ["$7$"]}],
    "amc23": [{"question": "How many miles from City A?", "answer": 27.0}],
    "aime24": [{"problem": "Find $m+n$." + SHARED_INSTRUCTION, "answer": "204"}],
    "aime25": [{"problem": "Find the sum of all bases $b>9$.", "answer": "70"}],
    "theoremqa": [
        {"Question": "Is 7 a prime number?", "Answer": True, "Answer_type": "bool", "Picture": None},
        {"Question": "What is 2**10?", "Answer": 1024, "Answer_type": "integer", "Picture": None},
        {"Question": "Read the figure.", "Answer": 3, "Answer_type": "integer", "Picture": "figure.png"},
    ],
    "gpqa_diamond": [
        {
            "Question": "Which particle carries the electromagnetic force?",
            "Correct Answer": "photon",
            "Incorrect Answer 1": "gluon",
            "Incorrect Answer 2": "W boson",
            "Incorrect Answer 3": "graviton",
        }
    ],
    "mmlu_pro": [
        {
            "question": "What is 6 x 7?",
            "options": ["40", "41", "42", "43", "44", "45", "46", "47", "48", "49"],
            "answer": "C",
            "answer_index": 2,
            "category": "math",
        }
    ],
    "ifeval": [
        {
            "key": 1,
            "prompt": "Write a haiku about the sea in all lowercase letters.",
            "instruction_id_list": ["change_case:english_lowercase"],
            "kwargs": [{}],
        }
    ],
}
EXPECTED_DOCS = {"theoremqa": 2}  # the row with a picture is skipped
SPLIT_FILE = {"olympiadbench": "train.jsonl", "gpqa_diamond": "train.jsonl", "ifeval": "train.jsonl"}


def _write_rows(root: Path) -> Path:
    for name, rows in ROWS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / SPLIT_FILE.get(name, "test.jsonl"), "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    return root


def load_tasks_module(monkeypatch, data_dir: Path | None, **env: str):
    """Import cgd_tasks.py the way lighteval does (standalone, from its path) with the given env."""
    if data_dir is not None:
        monkeypatch.setenv("CGD_EVAL_DATA_DIR", str(data_dir))
    else:
        monkeypatch.delenv("CGD_EVAL_DATA_DIR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from cgd.eval.compat import apply

    apply()
    spec = importlib.util.spec_from_file_location("cgd_tasks_under_test", TASKS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return _write_rows(tmp_path_factory.mktemp("eval-data"))


@pytest.fixture()
def tasks_module(monkeypatch, data_dir):
    return load_tasks_module(monkeypatch, data_dir)


def _docs(config):
    from lighteval.tasks.lighteval_task import LightevalTask

    return LightevalTask(config).eval_docs()


def test_table_names_are_prefixed_and_do_not_clash_with_builtins(tasks_module):
    from lighteval.tasks.registry import Registry

    names = [config.name for config in tasks_module.TASKS_TABLE]
    assert len(names) == len(set(names))
    assert all(name.startswith("cgd_") for name in names)
    expected = {
        "cgd_math500",
        "cgd_minerva_math",
        "cgd_gsm8k",
        "cgd_olympiadbench",
        "cgd_amc23",
        "cgd_aime24",
        "cgd_aime25",
        "cgd_theoremqa",
        "cgd_gpqa_diamond",
        "cgd_mmlu_pro",
    }
    assert expected <= set(names)
    builtins = Registry.load_all_task_configs()
    assert not set(names) & set(builtins)


def test_default_sources_are_the_hub(monkeypatch):
    module = load_tasks_module(monkeypatch, None)
    assert module.cgd_math500.hf_repo == "HuggingFaceH4/MATH-500"
    assert module.cgd_gsm8k.hf_repo == "openai/gsm8k" and module.cgd_gsm8k.hf_subset == "main"
    assert module.cgd_gsm8k.evaluation_splits == ("test",)
    assert module.cgd_ifeval.hf_repo == "google/IFEval"


@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_task_builds_docs_from_local_rows(tasks_module, data_dir, name):
    config = getattr(tasks_module, f"cgd_{name}")
    assert Path(config.hf_repo) == (data_dir / name).resolve()
    docs = _docs(config)
    assert len(docs) == EXPECTED_DOCS.get(name, len(ROWS[name]))
    for doc in docs:
        assert doc.query.strip()
        assert "Please reason step by step, and put your final answer within" not in doc.query
        if name != "ifeval":
            assert "\\boxed{}" in doc.query
            assert doc.get_golds()[0].strip()


def test_golds_and_prompts(tasks_module):
    gsm = {d.get_golds()[0] for d in _docs(tasks_module.cgd_gsm8k)}
    assert gsm == {"7", "1234"}
    math = _docs(tasks_module.cgd_math500)
    assert {d.get_golds()[0] for d in math} == {"\\frac{3}{4}", "4"}
    assert all(d.query.startswith(tasks_module.MATH_INSTRUCTION) for d in math)
    assert _docs(tasks_module.cgd_olympiadbench)[0].get_golds()[0] == "7"
    assert _docs(tasks_module.cgd_amc23)[0].get_golds()[0] == "27"
    assert {d.get_golds()[0] for d in _docs(tasks_module.cgd_theoremqa)} == {"True", "1024"}

    (gpqa,) = _docs(tasks_module.cgd_gpqa_diamond)
    assert gpqa.choices == ["A", "B", "C", "D"]
    assert f"({gpqa.get_golds()[0]}) photon" in gpqa.query
    again = tasks_module.gpqa_prompt(ROWS["gpqa_diamond"][0], "t")
    assert again.gold_index == gpqa.gold_index  # reproducible option order

    (mmlu,) = _docs(tasks_module.cgd_mmlu_pro)
    assert mmlu.choices == list("ABCDEFGHIJ") and mmlu.get_golds() == ["C"]
    assert "(C) 42" in mmlu.query


def test_first_n_keeps_file_order(monkeypatch, data_dir):
    module = load_tasks_module(monkeypatch, data_dir, CGD_EVAL_FIRST_N="1")
    (doc,) = _docs(module.cgd_gsm8k)
    assert doc.get_golds() == ["7"]


def test_per_task_path_overrides_data_dir(monkeypatch, data_dir, tmp_path):
    folder = tmp_path / "my_gsm8k"
    folder.mkdir()
    (folder / "test.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n")
    module = load_tasks_module(monkeypatch, data_dir, CGD_EVAL_GSM8K_PATH=str(folder))
    assert [d.get_golds()[0] for d in _docs(module.cgd_gsm8k)] == ["2"]
    assert Path(module.cgd_math500.hf_repo) == (data_dir / "math500").resolve()


def test_missing_per_task_path_is_an_error(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError):
        load_tasks_module(monkeypatch, None, CGD_EVAL_MATH500_PATH=str(tmp_path / "absent"))


# --- metrics on known strings -------------------------------------------------------------------------


def _response(*texts: str):
    from lighteval.models.model_output import ModelResponse

    return ModelResponse(text=list(texts))


def _math_doc(tasks_module, gold: str):
    return tasks_module.math_prompt({"problem": "q", "answer": gold}, "cgd_test")


def test_math_acc_metric(tasks_module):
    metric = tasks_module.math_acc.sample_level_fn
    doc = _math_doc(tasks_module, "\\frac{1}{2}")
    assert metric.compute(doc=doc, model_response=_response("so \\boxed{0.5}")) == 1.0
    assert metric.compute(doc=doc, model_response=_response("so \\boxed{1/2}")) == 1.0
    assert metric.compute(doc=doc, model_response=_response("so \\boxed{\\dfrac{1}{2}}")) == 1.0
    assert metric.compute(doc=doc, model_response=_response("so \\boxed{0.25}")) == 0.0
    gsm = tasks_module.gsm8k_prompt({"question": "q", "answer": "...\n#### 1,234"}, "cgd_test")
    assert metric.compute(doc=gsm, model_response=_response("The total is \\boxed{1234}.")) == 1.0


def test_choice_acc_metric(tasks_module):
    metric = tasks_module.choice_acc.sample_level_fn
    doc = tasks_module.mmlu_pro_prompt(ROWS["mmlu_pro"][0], "cgd_test")
    assert metric.compute(doc=doc, model_response=_response("6 x 7 = 42, so \\boxed{C}")) == 1.0
    assert metric.compute(doc=doc, model_response=_response("The answer is (B).")) == 0.0
    assert metric.compute(doc=doc, model_response=_response("42")) == 0.0


def test_format_drift_metric(tasks_module):
    metric = tasks_module.format_drift.sample_level_fn
    doc = _math_doc(tasks_module, "4")
    critique = "The student's answer adds wrongly.\nConclusion: wrong"
    assert metric.compute(doc=doc, model_response=_response(critique)) == {
        "critique_rate": 1.0,
        "verdict_rate": 1.0,
        "boxed_rate": 0.0,
    }
    answer = "2 + 2 = 4.\nThe answer is \\boxed{4}."
    assert metric.compute(doc=doc, model_response=_response(answer)) == {
        "critique_rate": 0.0,
        "verdict_rate": 0.0,
        "boxed_rate": 1.0,
    }


@pytest.mark.parametrize(
    ("k", "n", "correct", "expected"),
    [
        (1, 4, 1, 0.25),  # pass@1 over n samples = share correct
        (1, 4, 0, 0.0),
        (2, 4, 1, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (2, 4, 3, 1.0),  # n - c < k: always passes
        (8, 16, 2, 1 - (14 * 13 * 12 * 11 * 10 * 9 * 8 * 7) / (16 * 15 * 14 * 13 * 12 * 11 * 10 * 9)),
    ],
)
def test_pass_at_k_arithmetic(tasks_module, k, n, correct, expected):
    metric = tasks_module.pass_at_k(k, n)
    assert metric.metric_name == f"pass@k:k={k}&n={n}"
    doc = _math_doc(tasks_module, "\\frac{1}{2}")
    texts = ["\\boxed{0.5}"] * correct + ["\\boxed{7}"] * (n - correct)
    assert metric.sample_level_fn.compute(doc=doc, model_response=_response(*texts)) == pytest.approx(expected)


def test_sampled_tasks_request_n_samples(tasks_module):
    from lighteval.tasks.lighteval_task import LightevalTask

    task = LightevalTask(tasks_module.cgd_aime24_sampled)
    assert max(task.num_samples) == tasks_module.SAMPLED_N
    assert max(LightevalTask(tasks_module.cgd_aime24).num_samples) == 1


def test_shared_data_tasks_load(shared_data, monkeypatch):
    """The ../shared/data files load through the same prompt functions (first rows only)."""
    module = load_tasks_module(monkeypatch, shared_data / "eval", CGD_EVAL_FIRST_N="3")
    for name in ("math500", "minerva_math", "gsm8k", "olympiadbench", "amc23", "aime24", "aime25"):
        docs = _docs(getattr(module, f"cgd_{name}"))
        assert len(docs) == 3, name
        assert all("Please reason step by step, and put" not in d.query for d in docs)
        assert all(d.get_golds()[0] for d in docs)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


# --- MMLU-Pro options, suites, the paper protocol ------------------------------------------------------


def test_mmlu_pro_gold_follows_dropped_options(tasks_module):
    options = ["N/A", "", "40", "41", "42", "43"]
    doc = tasks_module.mmlu_pro_prompt(
        {"question": "6 x 7?", "options": options, "answer": "E", "answer_index": 4}, "t"
    )
    assert doc.choices == ["A", "B", "C", "D"] and doc.get_golds() == ["C"]
    assert "(C) 42" in doc.query
    last = tasks_module.mmlu_pro_prompt({"question": "q", "options": ["N/A", "1", "2"], "answer": "C"}, "t")
    assert last.get_golds() == ["B"] and "(B) 2" in last.query  # was an IndexError
    assert tasks_module.mmlu_pro_prompt({"question": "q", "options": ["1", "N/A"], "answer": "B"}, "t") is None


def test_suites_are_one_table():
    """recipes/eval/<suite>.txt files equal cgd.eval.suites (`python -m cgd.eval.suites` writes them)."""
    from cgd.eval import suites

    for name in suites.SUITES:
        path = REPO_ROOT / "recipes" / "eval" / f"{name}.txt"
        assert path.read_text() == suites.task_file_text(name), f"{path.name}: run python -m cgd.eval.suites"


def test_tasks_table_matches_suites_module(tasks_module):
    from cgd.eval.suites import CGD_TASKS, PAPER_TASKS

    assert [t.name for t in tasks_module.TASKS_TABLE] == CGD_TASKS + PAPER_TASKS


def test_paper_protocol_prompts(tasks_module, monkeypatch, tmp_path):
    doc = tasks_module.paper_math_prompt({"problem": "What is 1+1?" + SHARED_INSTRUCTION, "answer": "2"}, "t")
    assert doc.query == "What is 1+1?"
    assert doc.specific["system_prompt"] == tasks_module.PAPER_SYSTEM_PROMPT
    assert tasks_module.cgd_math500_paper.generation_size == 8192

    folder = tmp_path / "mmlu_pro"
    folder.mkdir()
    shot = {"question": "2+2?", "options": ["3", "4"], "answer": "B", "category": "math"}
    shot["cot_content"] = "A: Let's think step by step. 2+2=4. The answer is (B)."
    (folder / "validation.jsonl").write_text(json.dumps(shot) + "\n")
    row = {"question": "6 x 7?", "options": ["N/A", "41", "42"], "answer": "C", "category": "math"}
    (folder / "test.jsonl").write_text(json.dumps(row) + "\n")
    module = load_tasks_module(monkeypatch, tmp_path)
    (doc,) = _docs(module.cgd_mmlu_pro_paper)
    assert "2+2=4. The answer is (B)." in doc.query and doc.query.endswith("Answer: Let's think step by step.")
    assert doc.get_golds() == ["B"]
    metric = module.answer_is_acc.sample_level_fn
    assert metric.compute(doc=doc, model_response=_response("6 x 7 = 42. The answer is (B).")) == 1.0
    assert metric.compute(doc=doc, model_response=_response("so \\boxed{B}")) == 0.0  # not the paper's extraction
