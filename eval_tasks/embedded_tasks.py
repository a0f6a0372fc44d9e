"""lighteval tasks for the project's embedded question set (:mod:`cgd.demo.questions`), plus every cgd task.

``cgd_arith`` scores the held-out split of the generated arithmetic/word problems with the same prompt,
answer checking and format-drift metrics as ``cgd_gsm8k`` (integer answers, final answer in ``\\boxed{}``).
The data is local only (it is generated, not on the Hub): point the task at a folder holding
``test.jsonl`` (fields ``question``, ``answer``) with ``CGD_EVAL_ARITH_PATH=DIR`` or
``CGD_EVAL_DATA_DIR=ROOT`` (then ``ROOT/arith/test.jsonl``). ``python -m cgd.demo`` writes it there.
``CGD_EVAL_ARITH_MAX_NEW_TOKENS`` (default 256) sets the generation length.

This file re-exports ``eval_tasks/cgd_tasks.py``'s table, so one ``--custom-tasks`` path serves both:

    CGD_EVAL_ARITH_PATH=outputs/demo/eval_data/arith python -m cgd.eval.cli accelerate \\
        "model_name=cache/models/SmolLM2-135M-Instruct" "cgd_arith|0" --custom-tasks eval_tasks/embedded_tasks.py
"""

from __future__ import annotations

import os
from pathlib import Path

# lighteval imports a --custom-tasks file as a standalone module by path; `eval_tasks` is the installed package.
from eval_tasks.cgd_tasks import _MATH, Source, gsm8k_prompt, make_task
from eval_tasks.cgd_tasks import TASKS_TABLE as _CGD_TASKS

_ROOT = Path(__file__).resolve().parents[1]
#: Where the demo writes the held-out split when nothing else is set (read only if it exists).
DEFAULT_ARITH_DIR = _ROOT / "outputs" / "demo" / "eval_data" / "arith"
#: New tokens per answer when the run sets none: the problems need a few short steps; this bounds a rambling 135M model
#: on CPU. A run's ``generation_parameters={max_new_tokens:N}`` overrides it (cgd.eval.compat.keep_prompts_whole).
ARITH_GENERATION_SIZE = int(os.environ.get("CGD_EVAL_ARITH_MAX_NEW_TOKENS", "256"))

cgd_arith = make_task(
    "arith", gsm8k_prompt, Source(str(DEFAULT_ARITH_DIR), None, "test"), _MATH, ARITH_GENERATION_SIZE
)

TASKS_TABLE = [*_CGD_TASKS, cgd_arith]
