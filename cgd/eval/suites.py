"""Task groups the suite runner and ``recipes/eval/<suite>.txt`` share: plain lists of lighteval task names.

The one source of truth for suites: ``python -m cgd.eval.suites`` (re)writes ``recipes/eval/<suite>.txt`` from this
table, and a test checks the files equal it. No lighteval import here, so the runner can check task names before
anything heavy loads.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: Every task ``eval_tasks/cgd_tasks.py`` defines (its ``TASKS_TABLE`` is checked equal to this by a test).
CGD_TASKS = [
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
    "cgd_ifeval",
    "cgd_aime24_sampled",
    "cgd_aime25_sampled",
    "cgd_amc23_sampled",
]
#: The same benchmarks under the CGD authors' protocol (see docs/evaluation.md, "Protocols").
PAPER_TASKS = [
    "cgd_math500_paper",
    "cgd_minerva_math_paper",
    "cgd_gsm8k_paper",
    "cgd_olympiadbench_paper",
    "cgd_amc23_paper",
    "cgd_aime24_paper",
    "cgd_aime25_paper",
    "cgd_mmlu_pro_paper",
]
_PAPER_MATH = ["cgd_math500", "cgd_minerva_math", "cgd_gsm8k", "cgd_olympiadbench", "cgd_amc23"]

#: suite name -> (one-line description, task names).
SUITES: dict[str, tuple[str, list[str]]] = {
    "paper_math": (
        "The CGD paper's math table (Table 1): MATH-500, Minerva Math, GSM8K, OlympiadBench, AMC23.",
        _PAPER_MATH,
    ),
    "math": (
        "paper_math plus AIME 2024/2025 and TheoremQA.",
        [*_PAPER_MATH, "cgd_aime24", "cgd_aime25", "cgd_theoremqa"],
    ),
    "general": (
        "Generalisation and format drift beyond math: GPQA-Diamond, MMLU-Pro and lighteval's own IFEval.",
        ["cgd_gpqa_diamond", "cgd_mmlu_pro", "ifeval"],
    ),
    "sampled": (
        "pass@k over 16 samples per problem (paper: AIME pass@8/16); run with a sampling config "
        "(recipes/eval/llama31_8b_sampled.yaml): lighteval refuses n > 1 samples at temperature 0.",
        ["cgd_aime24_sampled", "cgd_aime25_sampled", "cgd_amc23_sampled"],
    ),
    "paper": (
        "The paper's benchmarks under the authors' protocol: system-line instruction, 8192 new tokens, "
        "MMLU-Pro 5-shot with 'the answer is (X)'.",
        PAPER_TASKS,
    ),
    "all": (
        "Every greedy cgd task (no sampled or paper-protocol variants) and lighteval's IFEval.",
        [t for t in CGD_TASKS if not t.endswith(("_sampled", "_ifeval"))] + ["ifeval"],
    ),
}


def suite_tasks(name: str) -> list[str]:
    """The task names of one suite (KeyError for an unknown suite)."""
    return list(SUITES[name][1])


def task_file_text(name: str) -> str:
    """``recipes/eval/<name>.txt``: a lighteval task-list file (one ``task|0`` per line)."""
    description, tasks = SUITES[name]
    header = (
        f"# {description}\n# Generated from cgd/eval/suites.py by `python -m cgd.eval.suites`; edit the table there.\n"
    )
    return header + "".join(f"{task}|0\n" for task in tasks)


def write_task_files(folder: str | Path) -> list[Path]:
    """Write ``<folder>/<suite>.txt`` for every suite; returns the paths."""
    folder = Path(folder)
    paths = []
    for name in SUITES:
        path = folder / f"{name}.txt"
        path.write_text(task_file_text(name))
        paths.append(path)
    return paths


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[2] / "recipes" / "eval")
    for written in write_task_files(target):
        print(written)
