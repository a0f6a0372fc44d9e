"""
name:
CGD benchmark suite (Critique-Guided Distillation, arXiv 2505.11628)

dataset:
HuggingFaceH4/MATH-500, math-ai/minervamath, openai/gsm8k, Hothan/OlympiadBench, math-ai/amc23,
HuggingFaceH4/aime_2024, yentinglin/aime_2025, TIGER-Lab/TheoremQA, Idavidrein/gpqa, TIGER-Lab/MMLU-Pro

abstract:
lighteval 0.13 custom tasks for the benchmarks the CGD paper reports, with its protocol: zero-shot
chain-of-thought, greedy decoding, the final answer in \\boxed{}, pass@1 with symbolic answer checking
(cgd.answers, built on lighteval's math extraction/verification). Every task also reports format drift
(share of outputs that read as critiques; share ending with a boxed answer). `*_sampled` variants report
pass@k over n samples (run them with temperature > 0).

Usage (through cgd's entry point, which applies the offline shims first):

    python -m cgd.eval.cli accelerate "model_name=PATH,generation_parameters={max_new_tokens:2048}" \\
        "cgd_math500|0,cgd_gsm8k|0" --custom-tasks eval_tasks/cgd_tasks.py

Local data instead of the Hub (read in place):
    CGD_EVAL_DATA_DIR=DIR      -> each task reads DIR/<local_name>/ (e.g. DIR/gsm8k/test.jsonl) when that
                                  folder exists, else its Hub dataset. <local_name> is the task name
                                  without "cgd_" (math500, minerva_math, gsm8k, olympiadbench, amc23,
                                  aime24, aime25, theoremqa, gpqa_diamond, mmlu_pro, ifeval).
    CGD_EVAL_<NAME>_PATH=DIR   -> one task (e.g. CGD_EVAL_GSM8K_PATH): a folder of <split>.jsonl files
                                  (test.jsonl, train.jsonl ...; .json/.parquet/.csv also work).
    CGD_EVAL_FIRST_N=N         -> evaluate only the first N rows of each file, in file order
                                  (lighteval's --max-samples takes a seeded random subset instead).
    CGD_EVAL_ROWS=START:END    -> only rows START..END-1 (file order), e.g. to run a long job in chunks.
Field names are read tolerantly (problem/question/Question, answer/final_answer/Answer ...), so the Hub
datasets and the ../shared/data files load through the same prompt functions.

languages:
english

tags:
math, reasoning, multiple-choice, cgd

paper:
https://arxiv.org/abs/2505.11628
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import random
import re
import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

# lighteval imports a --custom-tasks file as a standalone module by path; `cgd` comes from the installed package.
import numpy as np
from lighteval.metrics.metrics_sample import PassAtK, SampleLevelComputation
from lighteval.metrics.utils.metric_utils import SampleLevelMetric, SampleLevelMetricGrouping
from lighteval.models.model_output import ModelResponse
from lighteval.tasks.lighteval_task import LightevalTaskConfig
from lighteval.tasks.requests import Doc, SamplingMethod
from lighteval.tasks.tasks.ifeval.main import ifeval as _builtin_ifeval

from cgd.eval.compat import apply as _apply_compat

# Plain `lighteval ... --custom-tasks eval_tasks/cgd_tasks.py` gets the prompt-length, generation-length, system-line
# and IFEval fixes too (`python -m cgd.eval.cli` has applied them already; applying is idempotent).
_apply_compat()

from cgd.answers import (  # noqa: E402  (after the compat fixes are applied)
    answers_match,
    ends_with_boxed_answer,
    extract_choice_letter,
    has_verdict,
    looks_like_critique,
    normalize_gold,
)

logger = logging.getLogger(__name__)

# --- prompts ------------------------------------------------------------------------------------------

MATH_INSTRUCTION = (
    "Solve the problem below. Reason through it step by step, showing your work, and then write the "
    "final answer inside \\boxed{} on the last line."
)
CHOICE_INSTRUCTION = (
    "Answer the multiple-choice question below. Reason through it step by step, and then write the "
    "letter of the correct option inside \\boxed{} on the last line (for example \\boxed{B})."
)

# The instruction the ../shared/data problems (and Qwen-Math style files) already end with.
_TRAILING_INSTRUCTION = re.compile(
    r"\s*(?:please\s+)?reason\s+step\s+by\s+step,?\s+and\s+put\s+your\s+final\s+answer\s+within\s+"
    r"\\+boxed\{\}\.?\s*$",
    re.IGNORECASE,
)

_PROBLEM_KEYS = ("problem", "question", "Problem", "Question", "prompt")
_ANSWER_KEYS = ("answer", "final_answer", "Answer", "expected_answer", "target")


def strip_existing_instruction(problem: str) -> str:
    """The problem without a trailing "Please reason step by step, and put your final answer within
    \\boxed{}." sentence (so our own instruction is not doubled)."""
    return _TRAILING_INSTRUCTION.sub("", problem).rstrip()


def _first(line: dict, keys: Sequence[str]) -> Any:
    for key in keys:
        if line.get(key) is not None:
            return line[key]
    raise KeyError(f"none of {list(keys)} in row with fields {sorted(k for k in line if not k.startswith('__'))}")


def _answer_text(answer: Any) -> str:
    """A gold answer as a string: lists (OlympiadBench's final_answer) are joined; floats like 27.0
    become "27"; GSM8K worked solutions reduce to the text after ####."""
    if isinstance(answer, list | tuple):
        return ", ".join(normalize_gold(str(a)) for a in answer)
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    return normalize_gold(str(answer))


def _beyond_first_n(line: dict) -> bool:
    """True for rows outside CGD_EVAL_FIRST_N=N (the first N rows) or CGD_EVAL_ROWS=START:END (a slice,
    for chunked runs); both count rows in file order. lighteval skips a row whose prompt function
    returns None."""
    index = int(line.get("__index", 0))
    limit = os.environ.get("CGD_EVAL_FIRST_N")
    if limit and index >= int(limit):
        return True
    rows = os.environ.get("CGD_EVAL_ROWS")
    if rows:
        start, _, end = rows.partition(":")
        if index < int(start or 0) or (end and index >= int(end)):
            return True
    return False


def _math_doc(line: dict, task_name: str, query: str, gold: str) -> Doc:
    return Doc(
        task_name=task_name,
        query=f"{MATH_INSTRUCTION}\n\n{query}",
        choices=[gold],
        gold_index=0,
        specific={"answer": gold},
    )


def math_prompt(line: dict, task_name: str | None = None) -> Doc | None:
    """MATH-500, Minerva Math, OlympiadBench, AMC23, AIME: problem + CoT/boxed instruction; gold = answer."""
    if _beyond_first_n(line):
        return None
    problem = strip_existing_instruction(str(_first(line, _PROBLEM_KEYS)))
    return _math_doc(line, task_name, problem, _answer_text(_first(line, _ANSWER_KEYS)))


def gsm8k_prompt(line: dict, task_name: str | None = None) -> Doc | None:
    """GSM8K: question + instruction; gold = the number after ``####`` (thousands separators dropped)."""
    if _beyond_first_n(line):
        return None
    question = strip_existing_instruction(str(_first(line, _PROBLEM_KEYS)))
    return _math_doc(line, task_name, question, _answer_text(_first(line, _ANSWER_KEYS)))


def theoremqa_prompt(line: dict, task_name: str | None = None) -> Doc | None:
    """TheoremQA: text-only questions (rows with a picture are skipped); booleans box True/False."""
    if _beyond_first_n(line) or line.get("Picture"):
        return None
    question = strip_existing_instruction(str(_first(line, _PROBLEM_KEYS)))
    answer = _first(line, _ANSWER_KEYS)
    gold = str(answer) if isinstance(answer, bool) else _answer_text(answer)
    if str(line.get("Answer_type", "")).lower() == "bool":
        question += "\nAnswer True or False."
    return _math_doc(line, task_name, question, gold)


def _choice_doc(task_name: str, question: str, options: list[str], gold_index: int) -> Doc:
    letters = string.ascii_uppercase[: len(options)]
    listing = "\n".join(f"({letter}) {str(option).strip()}" for letter, option in zip(letters, options))
    return Doc(
        task_name=task_name,
        query=f"{CHOICE_INSTRUCTION}\n\n{question.strip()}\n\n{listing}",
        choices=list(letters),
        gold_index=gold_index,
        specific={"answer": letters[gold_index]},
    )


def gpqa_prompt(line: dict, task_name: str | None = None) -> Doc | None:
    """GPQA-Diamond: the correct answer is placed among the three distractors at a position fixed by a
    hash of the question (reproducible across runs and machines, unlike a global RNG)."""
    if _beyond_first_n(line):
        return None
    question = str(_first(line, ("Question", "question")))
    incorrect = [line["Incorrect Answer 1"], line["Incorrect Answer 2"], line["Incorrect Answer 3"]]
    seed = int(hashlib.sha256(question.encode("utf-8")).hexdigest()[:8], 16)
    gold_index = random.Random(seed).randint(0, 3)
    options = incorrect[:gold_index] + [line["Correct Answer"]] + incorrect[gold_index:]
    return _choice_doc(task_name, question, options, gold_index)


def _mmlu_pro_options(line: dict) -> tuple[list[str], int] | None:
    """The row's options without empty/"N/A" entries, and the gold's index among them.

    The gold is the row's ``answer`` letter (else ``answer_index``) into the *original* options, mapped through the
    kept ones: dropping an option before the gold shifts its letter. None (the row is skipped, with a warning) when
    the gold itself is an empty option.
    """
    raw = [str(o) for o in line["options"]]
    kept = [i for i, o in enumerate(raw) if o.strip() and o.strip() != "N/A"]
    letter = str(line.get("answer") or "").strip().upper()
    gold = string.ascii_uppercase.index(letter) if len(letter) == 1 and letter.isalpha() else int(line["answer_index"])
    if gold not in kept:
        logger.warning("MMLU-Pro row %s: the gold option is empty or N/A; row skipped", line.get("question_id"))
        return None
    return [raw[i] for i in kept], kept.index(gold)


def mmlu_pro_prompt(line: dict, task_name: str | None = None) -> Doc | None:
    """MMLU-Pro: up to ten options A-J (empty/"N/A" ones dropped, the gold letter mapped through the kept ones)."""
    if _beyond_first_n(line):
        return None
    options = _mmlu_pro_options(line)
    if options is None:
        return None
    return _choice_doc(task_name, str(_first(line, ("question", "Question"))), *options)


# --- the CGD authors' protocol (tasks cgd_*_paper) ----------------------------------------------------

#: The authors' harness (Qwen2.5-Math's evaluation, "qwen25-math-cot") puts this in a system line and the bare
#: question in the user turn; lighteval 0.13 has one system prompt per run, so the doc carries it and
#: cgd.eval.compat.system_prompt_per_doc turns it into the system turn.
PAPER_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
#: The paper generates up to 8192 new tokens on every math benchmark (LLaMA; 16384 for Qwen-Math).
PAPER_GENERATION_SIZE = 8192
MMLU_PRO_PAPER_HEADER = (
    "The following are multiple choice questions (with answers) about {category}. Think step by step and then "
    'finish your answer with "the answer is (X)" where X is the correct letter choice.'
)
MMLU_PRO_SHOTS = 5


def paper_math_prompt(line: dict, task_name: str | None = None) -> Doc | None:
    """Math under the authors' protocol: the bare problem as the user turn, the instruction as a system line."""
    if _beyond_first_n(line):
        return None
    problem = strip_existing_instruction(str(_first(line, _PROBLEM_KEYS)))
    gold = _answer_text(_first(line, _ANSWER_KEYS))
    return Doc(
        task_name=task_name,
        query=problem,
        choices=[gold],
        gold_index=0,
        specific={"answer": gold, "system_prompt": PAPER_SYSTEM_PROMPT},
    )


def _mmlu_pro_block(line: dict, options: list[str]) -> str:
    listing = "\n".join(f"{letter}. {option.strip()}" for letter, option in zip(string.ascii_uppercase, options))
    return f"Question:\n{str(line['question']).strip()}\nOptions:\n{listing}\nAnswer: Let's think step by step."


@functools.lru_cache(maxsize=4)
def _mmlu_pro_shots(repo: str, subset: str | None) -> dict[str, list[dict]]:
    """The validation split (the chain-of-thought examples) by category, loaded once per process."""
    import datasets

    rows = datasets.load_dataset(repo, subset, split="validation")
    by_category: dict[str, list[dict]] = {}
    for row in rows:
        by_category.setdefault(str(row["category"]), []).append(row)
    return by_category


def mmlu_pro_paper_prompt(line: dict, task_name: str | None = None) -> Doc | None:
    """MMLU-Pro 5-shot chain of thought, as MMLU-Pro's own evaluation and the authors' harness run it: five
    validation examples of the same category with their worked answers, then the question; scored by the letter
    after "the answer is (X)" (:class:`AnswerIsLetterMatch`)."""
    if _beyond_first_n(line):
        return None
    options = _mmlu_pro_options(line)
    if options is None:
        return None
    source = resolve_source("mmlu_pro", HUB["mmlu_pro"])
    category = str(line.get("category", ""))
    shots = _mmlu_pro_shots(source.repo, source.subset).get(category, [])[:MMLU_PRO_SHOTS]
    parts = [MMLU_PRO_PAPER_HEADER.format(category=category.replace("_", " "))]
    for shot in shots:
        shot_options = _mmlu_pro_options(shot)
        if shot_options is None:
            continue
        worked = re.sub(r"^A:\s*Let's think step by step\.?\s*", "", str(shot.get("cot_content", "")).strip())
        parts.append(f"{_mmlu_pro_block(shot, shot_options[0])} {worked}")
    parts.append(_mmlu_pro_block(line, options[0]))
    letters = list(string.ascii_uppercase[: len(options[0])])
    return Doc(
        task_name=task_name,
        query="\n\n".join(parts),
        choices=letters,
        gold_index=options[1],
        specific={"answer": letters[options[1]]},
    )


_ANSWER_IS = re.compile(r"answer is \(?([A-J])\)?")
_ANSWER_COLON = re.compile(r"[aA]nswer:\s*\(?([A-J])\)?")


def answer_is_letter(text: str) -> str | None:
    """MMLU-Pro's own extraction: the last "answer is (X)", else the last "Answer: X"; None otherwise."""
    for pattern in (_ANSWER_IS, _ANSWER_COLON):
        hits = pattern.findall(text or "")
        if hits:
            return hits[-1]
    return None


# --- metrics ------------------------------------------------------------------------------------------


class MathAnswerMatch(SampleLevelComputation):
    """1.0 when the first prediction's final answer matches the gold (cgd.answers.answers_match)."""

    def compute(self, doc: Doc, model_response: ModelResponse, **kwargs: Any) -> float:
        predictions = model_response.final_text
        if not predictions:
            return 0.0
        return float(answers_match(predictions[0], doc.get_golds()[0]))


class ChoiceLetterMatch(SampleLevelComputation):
    """1.0 when the first prediction commits to the gold option letter (cgd.answers.extract_choice_letter)."""

    def compute(self, doc: Doc, model_response: ModelResponse, **kwargs: Any) -> float:
        predictions = model_response.final_text
        if not predictions:
            return 0.0
        letter = extract_choice_letter(predictions[0], len(doc.choices))
        return float(letter is not None and letter == doc.choices[doc.gold_index])


class AnswerIsLetterMatch(SampleLevelComputation):
    """1.0 when "the answer is (X)" in the first prediction names the gold letter (:func:`answer_is_letter`)."""

    def compute(self, doc: Doc, model_response: ModelResponse, **kwargs: Any) -> float:
        predictions = model_response.final_text
        if not predictions:
            return 0.0
        return float(answer_is_letter(predictions[0]) == doc.choices[doc.gold_index])


class FormatDrift(SampleLevelComputation):
    """Per output: reads as a critique (verdict or grading phrasing), has a ``Conclusion:`` verdict,
    ends with a boxed answer. Averaged over the corpus these are rates (lower critique_rate is better)."""

    def compute(self, doc: Doc, model_response: ModelResponse, **kwargs: Any) -> dict[str, float]:
        text = model_response.final_text[0] if model_response.final_text else ""
        return {
            "critique_rate": float(looks_like_critique(text)),
            "verdict_rate": float(has_verdict(text)),
            "boxed_rate": float(ends_with_boxed_answer(text)),
        }


math_acc = SampleLevelMetric(
    metric_name="acc",
    sample_level_fn=MathAnswerMatch(),
    category=SamplingMethod.GENERATIVE,
    corpus_level_fn=np.mean,
    higher_is_better=True,
)
choice_acc = SampleLevelMetric(
    metric_name="acc",
    sample_level_fn=ChoiceLetterMatch(),
    category=SamplingMethod.GENERATIVE,
    corpus_level_fn=np.mean,
    higher_is_better=True,
)
answer_is_acc = SampleLevelMetric(
    metric_name="acc",
    sample_level_fn=AnswerIsLetterMatch(),
    category=SamplingMethod.GENERATIVE,
    corpus_level_fn=np.mean,
    higher_is_better=True,
)
format_drift = SampleLevelMetricGrouping(
    metric_name=["critique_rate", "verdict_rate", "boxed_rate"],
    sample_level_fn=FormatDrift(),
    category=SamplingMethod.GENERATIVE,
    corpus_level_fn={"critique_rate": np.mean, "verdict_rate": np.mean, "boxed_rate": np.mean},
    higher_is_better={"critique_rate": False, "verdict_rate": False, "boxed_rate": True},
)


def pass_at_k(k: int, n: int, scorer: SampleLevelComputation | None = None) -> SampleLevelMetric:
    """lighteval's unbiased pass@k estimator (Chen et al. 2021) over n samples, scored by cgd.answers.

    Named ``pass@k:k=<k>&n=<n>`` like lighteval's parametrized metrics.
    """
    return SampleLevelMetric(
        metric_name=f"pass@k:k={k}&n={n}",
        sample_level_fn=PassAtK(k=k, n=n, strip_strings=True, sample_scoring_function=scorer or MathAnswerMatch()),
        category=SamplingMethod.GENERATIVE,
        corpus_level_fn=np.mean,
        higher_is_better=True,
    )


# --- data sources -------------------------------------------------------------------------------------

_SPLITS = ("test", "train", "validation")


class Source(NamedTuple):
    """Where a task's rows come from: a Hub dataset (repo, subset, split) or a local folder.

    (A NamedTuple, not a dataclass: lighteval imports this file without registering it in sys.modules,
    which dataclasses with postponed annotations need.)
    """

    repo: str
    subset: str | None
    split: str


def resolve_source(local_name: str, hub: Source) -> Source:
    """The task's data source: CGD_EVAL_<NAME>_PATH, then CGD_EVAL_DATA_DIR/<local_name>/, then the Hub.

    A local folder holds ``<split>.jsonl`` (or .json/.parquet/.csv) files and is read in place by
    ``datasets.load_dataset(folder)``, which names splits after the files (test.jsonl -> "test"). The
    Hub split is used when the folder has it, else test, train, validation in that order.
    """
    explicit = os.environ.get(f"CGD_EVAL_{local_name.upper()}_PATH")
    root = os.environ.get("CGD_EVAL_DATA_DIR")
    folder = Path(explicit) if explicit else (Path(root) / local_name if root else None)
    if folder is None:
        return hub
    if not folder.is_dir():
        if explicit:
            raise FileNotFoundError(
                f"CGD_EVAL_{local_name.upper()}_PATH={explicit} is not a folder of <split>.jsonl files"
            )
        logger.info("cgd_tasks: no %s, %s reads %s from the Hub", folder, local_name, hub.repo)
        return hub
    stems = {p.stem for p in folder.iterdir() if p.suffix in {".jsonl", ".json", ".parquet", ".csv"}}
    split = next((s for s in (hub.split, *_SPLITS) if s in stems), None)
    if split is None:
        raise FileNotFoundError(f"{folder} holds no test/train/validation data file (e.g. test.jsonl)")
    return Source(repo=str(folder.resolve()), subset=None, split=split)


def make_task(
    local_name: str,
    prompt_function: Callable[[dict, str | None], Doc | None],
    hub: Source,
    metrics: list,
    generation_size: int,
    suffix: str = "",
    version: int = 0,
) -> LightevalTaskConfig:
    """One task config named ``cgd_<local_name><suffix>`` reading from :func:`resolve_source`."""
    source = resolve_source(local_name, hub)
    return LightevalTaskConfig(
        name=f"cgd_{local_name}{suffix}",
        prompt_function=prompt_function,
        hf_repo=source.repo,
        hf_subset=source.subset,
        hf_avail_splits=[source.split],
        evaluation_splits=[source.split],
        few_shots_split=None,
        few_shots_select=None,
        generation_size=generation_size,
        metrics=metrics,
        stop_sequence=None,
        version=version,
    )


# --- tasks --------------------------------------------------------------------------------------------

# Generation lengths: the paper allows 8192 new tokens (LLaMA) / 16384 (Qwen-Math); these defaults suit
# 7-8B instruct models in a sensible wall-clock. Raise or lower per run with
# generation_parameters={max_new_tokens:N} in the model args (it overrides generation_size).
HUB = {
    "math500": Source("HuggingFaceH4/MATH-500", "default", "test"),
    "minerva_math": Source("math-ai/minervamath", "default", "test"),
    "gsm8k": Source("openai/gsm8k", "main", "test"),
    "olympiadbench": Source("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train"),
    "amc23": Source("math-ai/amc23", "default", "test"),
    "aime24": Source("HuggingFaceH4/aime_2024", "default", "train"),
    "aime25": Source("yentinglin/aime_2025", "default", "train"),
    "theoremqa": Source("TIGER-Lab/TheoremQA", "default", "test"),
    "gpqa_diamond": Source("Idavidrein/gpqa", "gpqa_diamond", "train"),  # gated: accept the terms on the Hub
    "mmlu_pro": Source("TIGER-Lab/MMLU-Pro", "default", "test"),
}
_MATH = [math_acc, format_drift]
_CHOICE = [choice_acc, format_drift]

cgd_math500 = make_task("math500", math_prompt, HUB["math500"], _MATH, 4096)
cgd_minerva_math = make_task("minerva_math", math_prompt, HUB["minerva_math"], _MATH, 4096)
cgd_gsm8k = make_task("gsm8k", gsm8k_prompt, HUB["gsm8k"], _MATH, 1024)
cgd_olympiadbench = make_task("olympiadbench", math_prompt, HUB["olympiadbench"], _MATH, 4096)
cgd_amc23 = make_task("amc23", math_prompt, HUB["amc23"], _MATH, 4096)
cgd_aime24 = make_task("aime24", math_prompt, HUB["aime24"], _MATH, 8192)
cgd_aime25 = make_task("aime25", math_prompt, HUB["aime25"], _MATH, 8192)
cgd_theoremqa = make_task("theoremqa", theoremqa_prompt, HUB["theoremqa"], _MATH, 2048)
cgd_gpqa_diamond = make_task("gpqa_diamond", gpqa_prompt, HUB["gpqa_diamond"], _CHOICE, 4096)
cgd_mmlu_pro = make_task("mmlu_pro", mmlu_pro_prompt, HUB["mmlu_pro"], _CHOICE, 2048)

# IFEval with lighteval's own prompt function and metric (prompt/instruction-level strict and loose
# accuracy), only made able to read a local copy: `ifeval` (built-in) and `cgd_ifeval` score the same way.
# lighteval's IFEval checks need `langdetect` (see setup.cfg).
_IFEVAL = resolve_source("ifeval", Source("google/IFEval", "default", "train"))
cgd_ifeval = dataclasses.replace(
    _builtin_ifeval,
    name="cgd_ifeval",
    hf_repo=_IFEVAL.repo,
    hf_subset=_IFEVAL.subset,
    hf_avail_splits=[_IFEVAL.split],
    evaluation_splits=[_IFEVAL.split],
    few_shots_split=None,
    few_shots_select=None,
)

# Sampled variants: pass@k over SAMPLED_N samples per problem (the paper's AIME pass@8/16). Run them in
# their own command with sampling on, e.g. generation_parameters={temperature:0.6,top_p:0.95}: lighteval
# refuses n > 1 samples at temperature 0, and the temperature is per run, not per task.
SAMPLED_N = 16
SAMPLED_KS = (1, 8, 16)
_SAMPLED = [math_acc, format_drift] + [pass_at_k(k, SAMPLED_N) for k in SAMPLED_KS]
cgd_aime24_sampled = make_task("aime24", math_prompt, HUB["aime24"], _SAMPLED, 8192, suffix="_sampled")
cgd_aime25_sampled = make_task("aime25", math_prompt, HUB["aime25"], _SAMPLED, 8192, suffix="_sampled")
cgd_amc23_sampled = make_task("amc23", math_prompt, HUB["amc23"], _SAMPLED, 4096, suffix="_sampled")

# The same benchmarks under the CGD authors' protocol (docs/evaluation.md, "Protocols").
_PAPER = PAPER_GENERATION_SIZE
cgd_math500_paper = make_task("math500", paper_math_prompt, HUB["math500"], _MATH, _PAPER, suffix="_paper")
cgd_minerva_math_paper = make_task("minerva_math", paper_math_prompt, HUB["minerva_math"], _MATH, _PAPER, "_paper")
cgd_gsm8k_paper = make_task("gsm8k", paper_math_prompt, HUB["gsm8k"], _MATH, _PAPER, suffix="_paper")
cgd_olympiadbench_paper = make_task("olympiadbench", paper_math_prompt, HUB["olympiadbench"], _MATH, _PAPER, "_paper")
cgd_amc23_paper = make_task("amc23", paper_math_prompt, HUB["amc23"], _MATH, _PAPER, suffix="_paper")
cgd_aime24_paper = make_task("aime24", paper_math_prompt, HUB["aime24"], _MATH, _PAPER, suffix="_paper")
cgd_aime25_paper = make_task("aime25", paper_math_prompt, HUB["aime25"], _MATH, _PAPER, suffix="_paper")
cgd_mmlu_pro_paper = make_task(
    "mmlu_pro", mmlu_pro_paper_prompt, HUB["mmlu_pro"], [answer_is_acc, format_drift], 2048, suffix="_paper"
)

TASKS_TABLE = [
    cgd_math500,
    cgd_minerva_math,
    cgd_gsm8k,
    cgd_olympiadbench,
    cgd_amc23,
    cgd_aime24,
    cgd_aime25,
    cgd_theoremqa,
    cgd_gpqa_diamond,
    cgd_mmlu_pro,
    cgd_ifeval,
    cgd_aime24_sampled,
    cgd_aime25_sampled,
    cgd_amc23_sampled,
    cgd_math500_paper,
    cgd_minerva_math_paper,
    cgd_gsm8k_paper,
    cgd_olympiadbench_paper,
    cgd_amc23_paper,
    cgd_aime24_paper,
    cgd_aime25_paper,
    cgd_mmlu_pro_paper,
]
