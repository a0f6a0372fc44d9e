"""The training-throughput benchmark runs on CPU with tiny shapes, prints its tables, and its paths agree.

Also covers the mask-free ``cgd_varlen`` attention it benchmarks (:mod:`cgd.attention`).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
GPU_SCRIPT = BENCHMARKS / "gpu_throughput.sh"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    _load("train_setups")  # the runner imports its set-up table as a sibling, as it does when run as a script
    return _load("train_throughput")


def test_varlen_attention_matches_per_sequence_sdpa():
    from cgd.attention import check_varlen_attention

    assert check_varlen_attention("cpu") == "ok"


def test_varlen_attention_padded_right_is_exact_for_real_tokens():
    """Mask-free causal attention equals masked sdpa on every real token of a right-padded batch."""
    from cgd.attention import varlen_attention_forward

    torch.manual_seed(0)
    lengths = [9, 4]
    q, k, v = (torch.randn(2, h, 9, 16) for h in (4, 2, 2))
    mask = torch.zeros(2, 1, 9, 9, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :, :n, :n] = torch.ones(n, n).tril().bool()
    mask[1, :, 4:, 0] = True  # pad rows need one visible key to stay finite
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True).transpose(1, 2)
    out, _ = varlen_attention_forward(None, q, k, v, None)
    for i, n in enumerate(lengths):
        torch.testing.assert_close(out[i, :n], ref[i, :n])


def test_benchmark_runs_on_cpu_and_paths_agree(bench, capsys, tmp_path):
    setups = ["trl_defaults", "cgd_defaults", "cgd_grouped", "cgd_padfree"]
    out = bench.main(
        [
            *("--model_size", "tiny", "--num_rows", "48", "--steps", "3", "--warmup_steps", "1", "--threads", "1"),
            *("--setups", ",".join(setups), "--output_dir", str(tmp_path), "--check_rows", "4"),
            *("--collator_bench", "--collator_repeats", "1"),
        ]
    )
    printed = capsys.readouterr().out
    assert "| set-up | path | batch | real tok/s |" in printed
    for name in setups:  # a measured row, not a failure row
        assert re.search(rf"^\| {name} \| (trl|cgd) \| \d+ \| [\d,]+ \| [\d,]+ \|", printed, re.M), name
    assert "| CGDCollator padded (pre-encoded rows) |" in printed
    assert (tmp_path / "table.md").read_text().startswith("| set-up |")

    attn = {s["name"]: s["attn"] for s in out["setups"]}
    assert attn["cgd_padfree"] == "cgd_varlen", out["notes"]  # no silent fallback to sdpa
    runs = {name: out["results"][name][0] for name in setups}
    assert all(r["error"] is None for r in runs.values()), runs
    ref = runs["trl_defaults"]
    # Same rows, same loss through every path: TRL's collator vs CGD's, padded vs padding-free, sdpa vs cgd_varlen.
    for name, r in runs.items():
        assert r["init_loss"] == pytest.approx(ref["init_loss"], abs=1e-4), name
    # Random order with the same seed: the CGD path trains on exactly TRL's batches.
    cgd = runs["cgd_defaults"]
    assert (cgd["real_tokens"], cgd["loss_tokens"], cgd["slot_tokens"]) == (
        ref["real_tokens"],
        ref["loss_tokens"],
        ref["slot_tokens"],
    )
    assert cgd["final_loss"] == pytest.approx(ref["final_loss"], abs=1e-3)
    assert runs["cgd_padfree"]["final_loss"] == pytest.approx(ref["final_loss"], abs=1e-3)
    assert ref["final_loss"] < ref["init_loss"]  # it trained
    # Padding: none when padding-free, some when padded, less when length-grouped.
    assert runs["cgd_padfree"]["pad_fraction"] == 0
    assert ref["pad_fraction"] > 0.05
    assert runs["cgd_grouped"]["pad_fraction"] < ref["pad_fraction"]
    # Step time: the one TRL/CGD pair with equal settings, on the same tokens, with the same first losses.
    (pair,) = out["step_time"]
    assert (pair["trl"], pair["cgd"], pair["same_tokens"]) == ("trl_defaults", "cgd_defaults", True)
    assert pair["first_losses"]["trl_defaults"] == pair["first_losses"]["cgd_defaults"]
    assert all(len(pair[clock]["ratios"]) == 1 and pair[clock]["ratio"] > 0 for clock in ("CPU time", "wall time"))
    assert "Same input_ids/labels in both: yes" in printed and "| CPU time |" in printed


def test_step_time_rows_and_model_match_the_documented_setup(bench):
    """``--model_size 3.5m --triplet_repeat 4``: cgd.testing's triplets ×4 and a random Llama of 3.54M parameters."""
    from cgd.testing import make_tiny_tokenizer

    args = bench.parse_args(["--model_size", "3.5m", "--triplet_repeat", "4", "--setups", "trl_nockpt,cgd_nockpt"])
    tokenizer = make_tiny_tokenizer()
    rows = bench.make_rows(tokenizer, args)
    assert (len(rows), args.max_length) == (256, 2048)
    assert rows[0]["critique"].count("\nConclusion:") == 4
    model = bench.build_model("3.5m", None, "sdpa", torch.device("meta"), 0, 0, 1)
    assert model.config.vocab_size == len(tokenizer)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 3.54
    setups, _ = bench.make_setups(args, torch.device("cpu"), gpu=False)
    assert setups[0].settings() == setups[1].settings()


def test_gpu_script_names_known_setups(bench):
    """The prepared device script passes only flags and set-up names the benchmark knows."""
    text = GPU_SCRIPT.read_text()
    blocks = re.findall(r"ARGS=\((.*?)\)", text, re.S)
    assert len(blocks) == 2
    for block in blocks:
        argv = shlex.split(block)
        args = bench.parse_args(argv)
        setups, _ = bench.make_setups(args, torch.device("cpu"), gpu=False)
        assert [s.name for s in setups] == args.setups.split(",")
    assert "--model_size 1.2b" in text and "--steps 40 --warmup_steps 10" in text
