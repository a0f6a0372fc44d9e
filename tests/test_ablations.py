"""Critique ablations: irrelevant (seeded derangement) and generic critiques, set as a training option."""

from __future__ import annotations

import pytest
from datasets import Dataset

from cgd.ablations import GENERIC_CRITIQUE, apply_critique_ablation, derangement
from cgd.config import CGDConfig
from cgd.testing import make_tiny_tokenizer, make_triplet_rows


def _rows(n: int = 12) -> Dataset:
    rows = make_triplet_rows(n, seed=3)
    for i, row in enumerate(rows):
        row["critique"] = f"critique number {i} says step {i} is wrong.\nConclusion: wrong"
    return Dataset.from_list(rows)


def test_irrelevant_critiques_are_another_rows_seeded_and_complete():
    ds = _rows()
    out = apply_critique_ablation(ds, "irrelevant", seed=5)
    own, moved = ds["critique"], out["critique"]
    assert all(a != b for a, b in zip(own, moved)), "no row may keep its own critique"
    assert sorted(own) == sorted(moved), "every critique is used exactly once"
    assert out["refined_response"] == ds["refined_response"] and out["question"] == ds["question"]
    assert apply_critique_ablation(ds, "irrelevant", seed=5)["critique"] == moved
    assert apply_critique_ablation(ds, "irrelevant", seed=6)["critique"] != moved
    assert sorted(derangement(7, 0)) == list(range(7))


def test_generic_and_none():
    ds = _rows(4)
    assert apply_critique_ablation(ds, "generic")["critique"] == [GENERIC_CRITIQUE] * 4
    assert "Conclusion" not in GENERIC_CRITIQUE  # a generic critique carries no verdict
    assert apply_critique_ablation(ds, "none") is ds
    with pytest.raises(ValueError, match="at least 2 rows"):
        apply_critique_ablation(ds.select([0]), "irrelevant")


def _config(tmp_path, **kwargs) -> CGDConfig:
    return CGDConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", **kwargs)


def test_the_trainer_renders_the_ablated_critique_with_the_same_encoder(tmp_path):
    from cgd.trainer import prepare_cgd_dataset

    tokenizer = make_tiny_tokenizer()
    ds = _rows(6)
    encoded = {}
    for ablation in ("none", "irrelevant", "generic"):
        args = _config(tmp_path, critique_ablation=ablation, critique_ablation_seed=1, max_length=None)
        encoded[ablation], _, _ = prepare_cgd_dataset(ds, tokenizer, args)
    perm = derangement(6, 1)
    for i in range(6):
        prompts = {
            k: tokenizer.decode([t for t, lab in zip(e[i]["input_ids"], e[i]["labels"]) if lab == -100])
            for k, e in encoded.items()
        }
        targets = {k: [lab for lab in e[i]["labels"] if lab != -100] for k, e in encoded.items()}
        assert targets["none"] == targets["irrelevant"] == targets["generic"], "the target never changes"
        squash = lambda text: "".join(text.split())  # noqa: E731 - the tiny tokenizer's decode spacing differs
        assert squash(f"critique number {i} ") in squash(prompts["none"])
        assert squash(f"critique number {perm[i]} ") in squash(prompts["irrelevant"])
        assert squash(f"critique number {i} ") not in squash(prompts["irrelevant"])
        assert squash(GENERIC_CRITIQUE) in squash(prompts["generic"])


def test_config_refuses_an_ablation_where_no_critique_is_shown(tmp_path):
    with pytest.raises(ValueError, match="does not show it"):
        _config(tmp_path, method="sft", critique_ablation="generic")
    with pytest.raises(ValueError, match="critique_ablation must be one of"):
        _config(tmp_path, critique_ablation="shuffled")
    assert _config(tmp_path, method="cft").critique_ablation == "none"
