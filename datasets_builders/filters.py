"""Row filters, each counted: decontamination (before generation) and the post-generation filters.

Post-generation filters run in a fixed order and a row is charged to the first filter that drops it:
empty output -> truncated (finish reason ``length``) -> unparsed verdict -> refined answer vs reference
-> verdict mix selection.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cgd import schema

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (the unit of the n-gram overlap check)."""
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


class Decontaminator:
    """Flags a question sharing any word ``n``-gram with an eval-set question (read from local JSONL files).

    A text shorter than ``n`` words is compared whole (as its single shorter n-gram), so a short eval
    question copied verbatim is still caught.
    """

    def __init__(self, files: Iterable[str | Path], fields: Iterable[str] = ("problem", "question"), n: int = 13):
        self.n = n
        self.files = [str(f) for f in files]
        self.fields = list(fields)
        self.grams: set[tuple[str, ...]] = set()
        self.num_eval_texts = 0
        for path in self.files:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if not line.strip():
                        continue
                    record = json.loads(line)
                    for name in self.fields:
                        if isinstance(record.get(name), str):
                            self.num_eval_texts += 1
                            self.grams.update(self._grams(record[name]))
                            break

    def _grams(self, text: str) -> set[tuple[str, ...]]:
        tokens = words(text)
        if not tokens:
            return set()
        if len(tokens) < self.n:
            return {tuple(tokens)}
        return set(ngrams(tokens, self.n))

    def __call__(self, text: str) -> bool:
        tokens = words(text)
        if len(tokens) < self.n:
            return bool(tokens) and tuple(tokens) in self.grams
        return any(g in self.grams for g in ngrams(tokens, self.n))


@dataclass
class FilterCount:
    """Rows in/out of one filter, with the ids it dropped."""

    name: str
    enabled: bool
    rows_in: int = 0
    dropped: int = 0
    detail: dict[str, int] = field(default_factory=dict)
    dropped_ids: list[str] = field(default_factory=list)

    @property
    def rows_out(self) -> int:
        return self.rows_in - self.dropped

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows_out"] = self.rows_out
        out["dropped_ids"] = self.dropped_ids[:1000]
        return out


def _gold(reference: str, fmt: str) -> str:
    if fmt == "final_answer":
        from cgd.answers import extract_final_answer

        return extract_final_answer(reference) or reference
    return reference


def _apply(rows: list[dict], count: FilterCount, drop_reason) -> list[dict]:
    count.rows_in = len(rows)
    if not count.enabled:
        return rows
    kept = []
    for row in rows:
        reason = drop_reason(row)
        if reason:
            count.dropped += 1
            count.dropped_ids.append(row[schema.ID])
            count.detail[reason] = count.detail.get(reason, 0) + 1
        else:
            kept.append(row)
    return kept


def apply_filters(
    rows: list[dict],
    filter_args: Any,
    stages: list[str],
    reference_answer_format: str = "auto",
    seed: int = 42,
) -> tuple[list[dict], list[FilterCount]]:
    """Run the enabled post-generation filters over assembled rows; returns kept rows and the counts."""
    counts = []
    outputs = {
        "probe": schema.INITIAL_RESPONSE,
        "critique": schema.CRITIQUE,
        "refine": schema.REFINED_RESPONSE,
        "direct": schema.TEACHER_ANSWER,
    }

    def empty(row: dict) -> str | None:
        for stage in stages:
            if not (row.get(outputs[stage]) or "").strip():
                return stage
        return None

    def truncated(row: dict) -> str | None:
        for stage in stages:
            if row.get(schema.finish_reason_column(stage)) == "length":
                return stage
        return None

    def unparsed(row: dict) -> str | None:
        return "unparsed" if row[schema.VERDICT] == "unparsed" else None

    def wrong_answer(row: dict) -> str | None:
        reference = row.get(schema.REFERENCE_ANSWER)
        if not reference or not reference.strip():
            return None  # nothing to check against: kept (counted in detail below)
        from cgd.answers import answers_match

        ok = answers_match(row[schema.REFINED_RESPONSE], _gold(reference, reference_answer_format))
        return None if ok else "mismatch"

    fa = filter_args
    for name, enabled, fn in (
        ("empty_output", fa.filter_empty, empty),
        ("truncated", fa.filter_truncated, truncated),
        ("unparsed_verdict", fa.filter_unparsed, unparsed),
        ("refined_vs_reference", fa.check_refined_answer, wrong_answer),
    ):
        count = FilterCount(name, bool(enabled))
        rows = _apply(rows, count, fn)
        if name == "refined_vs_reference" and enabled:
            count.detail["no_reference"] = sum(1 for r in rows if not (r.get(schema.REFERENCE_ANSWER) or "").strip())
        counts.append(count)
    mix = FilterCount("verdict_mix", fa.verdict_mix is not None)
    rows = select_verdict_mix(rows, fa.verdict_mix, seed, mix) if fa.verdict_mix is not None else rows
    if fa.verdict_mix is None:
        mix.rows_in = len(rows)
    counts.append(mix)
    return rows, counts


def mix_sizes(num_right: int, num_wrong: int, fraction: float) -> tuple[int, int]:
    """The largest (right, wrong) counts with ``right / (right + wrong) == fraction`` (rounded) that fit."""
    if fraction >= 1.0:
        return num_right, 0
    if fraction <= 0.0:
        return 0, num_wrong
    total = math.floor(min(num_right / fraction, num_wrong / (1.0 - fraction)) + 1e-9)
    while total > 0:
        right = round(fraction * total)
        if right <= num_right and total - right <= num_wrong:
            return right, total - right
        total -= 1
    return 0, 0


def select_verdict_mix(rows: list[dict], fraction: float, seed: int, count: FilterCount) -> list[dict]:
    """Keep a seeded random subset with the requested share of ``right`` verdicts (unparsed rows drop)."""
    count.rows_in = len(rows)
    right = [r for r in rows if r[schema.VERDICT] == "right"]
    wrong = [r for r in rows if r[schema.VERDICT] == "wrong"]
    n_right, n_wrong = mix_sizes(len(right), len(wrong), fraction)
    rng = random.Random(seed)
    keep = {r[schema.ID] for r in rng.sample(right, n_right)} | {r[schema.ID] for r in rng.sample(wrong, n_wrong)}
    kept = [r for r in rows if r[schema.ID] in keep]  # source order preserved
    for r in rows:
        if r[schema.ID] not in keep:
            count.dropped += 1
            count.dropped_ids.append(r[schema.ID])
            count.detail[r[schema.VERDICT]] = count.detail.get(r[schema.VERDICT], 0) + 1
    return kept
