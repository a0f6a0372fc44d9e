"""cgd.analysis.entropy: masks, agreement with a direct computation, batching, determinism, statistics and the CLI."""

from __future__ import annotations

import json

import pytest

from cgd import schema
from cgd.analysis.entropy import (
    CONDITIONS,
    PAIRS,
    build_examples,
    condition_view,
    derangement,
    main,
    score_examples,
    summarize,
)
from cgd.templates import PromptTemplates

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def peaky_model(tiny_checkpoint):
    """The tiny checkpoint with larger random weights, so predictive distributions are far from uniform."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.25)
    return model


def _direct(model, example) -> tuple[float, float, int]:
    """Plain full forward pass, manual softmax per position: mean entropy and NLL over the labelled tokens."""
    ids = torch.tensor([example.input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    ents, nlls = [], []
    for t in range(1, len(example.labels)):
        y = example.labels[t]
        if y == -100:
            continue
        z = logits[t - 1]
        p = torch.exp(z - z.max())
        p = p / p.sum()
        ents.append(float(-(p * torch.log(p)).sum()))
        nlls.append(float(-torch.log(p[y])))
    return sum(ents) / len(ents), sum(nlls) / len(nlls), len(ents)


def test_derangement_is_seeded_and_has_no_fixed_point():
    for n in (2, 3, 10, 57):
        perm = derangement(n, seed=3)
        assert sorted(perm) == list(range(n))
        assert all(perm[i] != i for i in range(n))
        assert perm == derangement(n, seed=3)
    assert derangement(50, seed=1) != derangement(50, seed=2)
    with pytest.raises(ValueError):
        derangement(1, seed=0)


@pytest.mark.parametrize("chat", [True, False], ids=["chat-template", "plain-layout"])
def test_only_refined_tokens_scored_and_identical_across_conditions(tiny_tokenizer, triplet_rows, chat):
    tok = tiny_tokenizer
    if not chat:  # a base-model tokenizer: the plain "Question: ... Answer:" layout
        from cgd.testing import make_tiny_tokenizer

        tok = make_tiny_tokenizer()
        tok.chat_template = None
    examples, kept = build_examples(tok, triplet_rows, seed=0)
    assert kept == list(range(len(triplet_rows)))
    assert len(examples) == len(CONDITIONS) * len(triplet_rows)
    by_row: dict[int, dict[str, object]] = {}
    for e in examples:
        by_row.setdefault(e.row, {})[e.condition] = e
    eos = tok.eos_token
    for i, conds in by_row.items():
        row = triplet_rows[i]
        targets = {tuple(e.target_ids) for e in conds.values()}
        assert len(targets) == 1, "target tokens differ between conditions"
        target = list(next(iter(targets)))
        expected = (row[schema.REFINED_RESPONSE] + eos) if chat else f" {row[schema.REFINED_RESPONSE]}{eos}"
        assert tok.decode(target) == expected
        for e in conds.values():
            n_prompt = len(e.input_ids) - len(target)
            assert e.labels[:n_prompt] == [-100] * n_prompt
            assert e.input_ids[n_prompt:] == target
            prompt = tok.decode(e.input_ids[:n_prompt])
            assert row[schema.QUESTION] in prompt
            assert row[schema.REFINED_RESPONSE] not in prompt
        q = tok.decode(conds["question"].input_ids)
        assert row[schema.INITIAL_RESPONSE] not in q and row[schema.CRITIQUE] not in q
        qa = tok.decode(conds["question_initial"].input_ids)
        assert row[schema.INITIAL_RESPONSE] in qa and row[schema.CRITIQUE] not in qa
        assert row[schema.CRITIQUE] in tok.decode(conds["question_initial_critique"].input_ids)
        shuffled = tok.decode(conds["question_initial_shuffled_critique"].input_ids)
        assert row[schema.CRITIQUE] not in shuffled and row[schema.INITIAL_RESPONSE] in shuffled
        if chat:
            assert prompt.endswith("<|im_start|>assistant\n")


def test_shuffled_control_is_deterministic_given_seed(tiny_tokenizer, triplet_rows):
    def shuffled(seed):
        examples, _ = build_examples(tiny_tokenizer, triplet_rows, seed=seed)
        return [e.input_ids for e in examples if e.condition == "question_initial_shuffled_critique"]

    assert shuffled(7) == shuffled(7)
    assert shuffled(7) != shuffled(8)
    # The critique shown is always another row's.
    for i, ids in enumerate(shuffled(7)):
        text = tiny_tokenizer.decode(ids)
        others = [r[schema.CRITIQUE] for j, r in enumerate(triplet_rows) if j != i]
        assert any(c in text for c in others)


def test_max_length_truncates_inputs_like_training_and_drops_rows_from_every_condition(tiny_tokenizer, triplet_rows):
    from cgd.collator import CGDEncoder

    examples, _ = build_examples(tiny_tokenizer, triplet_rows, seed=0)
    longest = sorted(max(len(e.input_ids) for e in examples if e.row == i) for i in range(len(triplet_rows)))
    cut = longest[len(longest) // 2]
    short, kept = build_examples(tiny_tokenizer, triplet_rows, seed=0, max_length=cut)
    assert kept == list(range(len(triplet_rows)))  # inputs shortened, no row lost
    assert all(len(e.input_ids) <= cut for e in short)
    assert any("[... truncated ...]" in tiny_tokenizer.decode(e.input_ids) for e in short)
    full = {(e.row, e.condition): e.target_ids for e in examples}
    assert all(e.target_ids == full[(e.row, e.condition)] for e in short)  # the target is never cut

    rows = [dict(r) for r in triplet_rows]
    rows[2][schema.REFINED_RESPONSE] = " ".join([rows[2][schema.REFINED_RESPONSE]] * 20)  # cannot fit `cut`
    assert CGDEncoder(tiny_tokenizer, "distilled_sft", cut).encode(condition_view(rows[2], CONDITIONS[0])) is None
    tight, kept = build_examples(tiny_tokenizer, rows, seed=0, max_length=cut)
    assert kept == [i for i in range(len(rows)) if i != 2]
    assert [e.row for e in tight] == [i for i in kept for _ in CONDITIONS]


def test_entropy_and_nll_match_direct_computation(peaky_model, tiny_tokenizer, triplet_rows):
    examples, _ = build_examples(tiny_tokenizer, triplet_rows[:6], seed=0)
    records = score_examples(peaky_model, examples, batch_size=5, chunk_size=7, progress=False)
    assert [(r["row"], r["condition"]) for r in records] == [(e.row, e.condition) for e in examples]
    entropies = []
    for e, r in zip(examples, records):
        ent, nll, n = _direct(peaky_model, e)
        assert r["num_tokens"] == n == len(e.target_ids)
        assert r["entropy"] == pytest.approx(ent, rel=1e-4, abs=1e-4)
        assert r["nll"] == pytest.approx(nll, rel=1e-4, abs=1e-4)
        entropies.append(r["entropy"])
    # The model is far from uniform, so a wrong position or mask would not pass by accident.
    assert max(entropies) - min(entropies) > 0.05
    assert max(entropies) < 0.95 * torch.log(torch.tensor(float(len(tiny_tokenizer)))).item()


def test_lm_head_runs_only_on_target_positions_in_chunks(peaky_model, tiny_tokenizer, triplet_rows):
    examples, _ = build_examples(tiny_tokenizer, triplet_rows[:4], seed=0)
    shapes = []
    hook = peaky_model.get_output_embeddings().register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    try:
        score_examples(peaky_model, examples, batch_size=16, chunk_size=10, progress=False)
    finally:
        hook.remove()
    assert all(len(s) == 2 and s[0] <= 10 for s in shapes)  # [positions, vocab], never [batch, length, vocab]
    assert sum(s[0] for s in shapes) == sum(len(e.target_ids) for e in examples)


def test_batched_equals_unbatched(peaky_model, tiny_tokenizer, triplet_rows):
    examples, _ = build_examples(tiny_tokenizer, triplet_rows[:5], seed=0)
    one = score_examples(peaky_model, examples, batch_size=1, progress=False)
    many = score_examples(peaky_model, examples, batch_size=8, chunk_size=3, progress=False)
    for a, b in zip(one, many):
        assert a["num_tokens"] == b["num_tokens"]
        assert a["entropy"] == pytest.approx(b["entropy"], abs=1e-4)
        assert a["nll"] == pytest.approx(b["nll"], abs=1e-4)


def _records(values: dict[str, list[float]], verdicts: list[str]) -> list[dict]:
    return [
        {"row": i, "verdict": verdicts[i], "condition": c, "num_tokens": 1 + i % 3, "entropy": v, "nll": 2 * v}
        for c, vs in values.items()
        for i, v in enumerate(vs)
    ]


def test_summarize_means_paired_differences_and_groups():
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.normal(3.0, 0.5, size=40)
    values = {
        "question": list(base + 0.6),
        "question_initial": list(base + 0.3),
        "question_initial_critique": list(base),
        "question_initial_shuffled_critique": list(base + 0.3 + rng.normal(0, 0.01, 40)),
    }
    verdicts = ["right" if i % 4 == 0 else "wrong" for i in range(40)]
    summary, diffs = summarize(_records(values, verdicts), num_bootstrap=500, seed=1)
    assert summary == summarize(_records(values, verdicts), num_bootstrap=500, seed=1)[0]
    assert {s["group"] for s in summary} == {"all", "right", "wrong"}
    by = {(s["group"], s["condition"]): s for s in summary}
    assert by[("all", "question")]["rows"] == 40 and by[("right", "question")]["rows"] == 10
    assert by[("wrong", "question")]["tokens"] == sum(1 + i % 3 for i in range(40) if verdicts[i] == "wrong")
    weights = np.array([1 + i % 3 for i in range(40)])
    for c, vs in values.items():
        s = by[("all", c)]
        assert s["entropy_mean"] == pytest.approx(np.mean(vs))
        assert s["nll_mean"] == pytest.approx(2 * np.mean(vs))
        assert s["entropy_ci_low"] < s["entropy_mean"] < s["entropy_ci_high"]
        assert s["nll_token_mean"] == pytest.approx(2 * np.average(vs, weights=weights))
    d = {(x["group"], x["metric"], x["a"], x["b"]): x for x in diffs}
    assert len(diffs) == 3 * 2 * len(PAIRS)
    crit = d[("all", "entropy", "question_initial_critique", "question_initial")]
    # Paired: a constant shift has a zero-width interval even though the rows vary a lot.
    assert crit["mean_diff"] == pytest.approx(-0.3)
    assert crit["ci_low"] == pytest.approx(-0.3) and crit["ci_high"] == pytest.approx(-0.3)
    assert crit["frac_rows_lower"] == 1.0
    control = d[("all", "entropy", "question_initial_critique", "question_initial_shuffled_critique")]
    assert control["ci_high"] < 0


def test_a_single_verdict_group_is_not_repeated_as_all():
    values = {
        c: [1.0, 2.0, 3.0]
        for c in ("question", "question_initial", "question_initial_critique", "question_initial_shuffled_critique")
    }
    summary, diffs = summarize(_records(values, ["unparsed"] * 3), num_bootstrap=50, seed=0)
    assert {s["group"] for s in summary} == {"all"} and {d["group"] for d in diffs} == {"all"}


def test_cli_writes_tables_and_plot(tmp_path, tiny_checkpoint, triplet_rows):
    data = tmp_path / "triplets.jsonl"
    rows = [dict(r) for r in triplet_rows]
    rows[3][schema.CRITIQUE] = "  "  # invalid: dropped by validation before scoring
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "entropy.yaml"
    config.write_text(f"model: {tiny_checkpoint}\ndataset: {data}\nbatch_size: 4\nnum_bootstrap: 200\nseed: 5\n")
    out = tmp_path / "out"
    result = main(["--config", str(config), "--num_rows", "10", "--output_dir", str(out), "--no_progress", "true"])
    names = ["entropy_rows.csv", "entropy_summary.csv", "entropy_differences.csv", "entropy_summary.json"]
    for name in [*names, "entropy_summary.md", "entropy.png"]:
        assert (out / name).stat().st_size > 0, name
    assert (out / "entropy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    payload = json.loads((out / "entropy_summary.json").read_text())
    assert payload["meta"]["rows"] == 10 and payload["meta"]["seed"] == 5 and payload["meta"]["dtype"] == "float32"
    assert result["meta"]["rows"] == 10 and len(result["summary"]) == len(payload["summary"])
    all_rows = [s for s in payload["summary"] if s["group"] == "all"]
    assert [s["condition"] for s in all_rows] == [c.name for c in CONDITIONS]
    assert all(s["rows"] == 10 for s in all_rows)
    assert (out / "entropy_rows.csv").read_text().count("\n") == 1 + 10 * len(CONDITIONS)
    assert "row-3" not in (out / "entropy_rows.csv").read_text()
    md = (out / "entropy_summary.md").read_text()
    assert "x+y'+c_shuffled" in md and "95%" in md


def test_cli_help_and_bad_dtype(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0 and "--num_rows" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["--model", "m", "--dataset", "d", "--dtype", "float8"])
    assert exit_.value.code == 2


@pytest.mark.parametrize(
    "argv, line",
    [
        (["--num_row", "3"], "unknown key(s) on the command line: 'num_row' (did you mean 'num_rows'?)"),  # prefix
        (["--batchsize", "3"], "unknown key(s) on the command line: 'batchsize' (did you mean 'batch_size'?)"),
    ],
)
def test_cli_refuses_abbreviations_and_unknown_keys_with_a_suggestion(argv, line, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--model", "m", "--dataset", "d", "--output_dir", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and line in err.lower() and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()  # refused before anything ran
    (tmp_path / "entropy.yaml").write_text("model: m\ndataset: d\nnum_bootstrp: 10\n")
    with pytest.raises(SystemExit):
        main(["--config", str(tmp_path / "entropy.yaml")])
    assert "'num_bootstrp' (did you mean 'num_bootstrap'?)" in capsys.readouterr().err


def test_templates_override_reaches_rendering(tiny_tokenizer, triplet_rows):
    templates = PromptTemplates.from_overrides({"distilled_sft": "Q: {question}", "system_prompt": "Be brief."})
    examples, _ = build_examples(tiny_tokenizer, triplet_rows[:2], templates=templates, seed=0)
    text = tiny_tokenizer.decode(next(e for e in examples if e.condition == "question").input_ids)
    assert "Q: How many" in text and "Be brief." in text
