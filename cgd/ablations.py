"""Critique ablations: train CGD on an irrelevant or a generic critique instead of the row's own.

The paper's critique-specificity ablation asks whether the *content* of the critique matters. Two controls keep
everything else (question, initial answer, refined target, prompt layout, collator) the same:

- ``irrelevant``: each row gets the critique of another row, chosen by a seeded derangement (no row keeps its own);
- ``generic``: every row gets one fixed text that asks for a careful re-check and says nothing about the draft.

The transform rewrites the ``critique`` column before encoding, so the same :class:`~cgd.collator.CGDCollator`
renders the rows. It is a training option (``critique_ablation`` in :class:`~cgd.config.CGDConfig`) any recipe
can set; it only applies to methods that show the critique as an input (``cgd``).
"""

from __future__ import annotations

import random

from datasets import Dataset

from cgd.schema import CRITIQUE, get_method

#: ``none`` keeps the row's own critique.
CRITIQUE_ABLATIONS: tuple[str, ...] = ("none", "irrelevant", "generic")

#: The generic critique: what any reviewer could say about any answer. No verdict, nothing specific.
GENERIC_CRITIQUE = (
    "Go through the initial answer again step by step. Check that every calculation is carried out correctly and "
    "that the final answer responds to the question, then write a complete solution."
)


def derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation with no fixed point (Sattolo's algorithm: one random n-cycle); ``n >= 2``."""
    if n < 2:
        raise ValueError("A derangement (the shuffled/irrelevant critique) needs at least 2 rows.")
    perm = list(range(n))
    rng = random.Random(seed)
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def check_critique_ablation(method: str, ablation: str) -> None:
    """Fail at parse time on an unknown ablation, or one set for a method that never shows the critique."""
    if ablation not in CRITIQUE_ABLATIONS:
        raise ValueError(f"critique_ablation must be one of {', '.join(CRITIQUE_ABLATIONS)}; got {ablation!r}.")
    if ablation != "none" and CRITIQUE not in get_method(method).inputs:
        raise ValueError(
            f"critique_ablation={ablation!r} replaces the critique the student sees, but method {method!r} does not "
            "show it (only 'cgd' does); set critique_ablation: none."
        )


def apply_critique_ablation(dataset: Dataset, ablation: str, seed: int = 0) -> Dataset:
    """``dataset`` with its ``critique`` column replaced as ``ablation`` says (unchanged for ``none``)."""
    if ablation == "none":
        return dataset
    if ablation not in CRITIQUE_ABLATIONS:
        raise ValueError(f"critique_ablation must be one of {', '.join(CRITIQUE_ABLATIONS)}; got {ablation!r}.")
    if ablation == "generic":
        critiques = [GENERIC_CRITIQUE] * len(dataset)
    else:
        own = dataset[CRITIQUE]
        critiques = [own[j] for j in derangement(len(own), seed)]
    return dataset.remove_columns(CRITIQUE).add_column(CRITIQUE, critiques)
