#!/usr/bin/env python
"""Optimizer-step time: ``CGDTrainer`` vs plain TRL ``SFTTrainer`` on identical tokens.

The same synthetic CGD triplets are encoded once by :class:`cgd.collator.CGDEncoder`; plain TRL gets those ids as a
pre-tokenized dataset (``input_ids`` + ``completion_mask``, ``completion_only_loss=True``, so it builds the same labels)
and its own collator, while ``CGDTrainer`` gets the raw triplets and goes through its whole path (validation, cached
encoding, ``CGDCollator``). The script checks that both train on the same ``input_ids``/``labels``, then times each
for ``--steps`` optimizer steps from the same random initialisation, in the same process, alternating the two
``--repeats`` times (the box may be shared). A step's time is the wall time between consecutive ``on_step_end``
callbacks, so it includes fetching and collating the batch, forward, backward and the optimizer; the first
``--warmup_steps`` are dropped. Reported: the median step time per trainer (median over repeats of each repeat's
median), the CGD/TRL ratio, and the first losses of both (equal tokens should give equal losses).

    OMP_NUM_THREADS=1 python benchmarks/step_time.py                      # tiny Llama, padded batches
    OMP_NUM_THREADS=1 python benchmarks/step_time.py --padding_free       # both trainers padding-free
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # runnable from a checkout without installing the package
    sys.path.insert(0, str(REPO_ROOT))

import datasets  # noqa: E402
import torch  # noqa: E402
from transformers import PrinterCallback, TrainerCallback  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from cgd.collator import CGDEncoder, encode_dataset  # noqa: E402
from cgd.config import CGDConfig  # noqa: E402
from cgd.testing import make_tiny_model, make_tiny_tokenizer, make_triplet_rows  # noqa: E402
from cgd.trainer import CGDTrainer  # noqa: E402


class StepTimer(TrainerCallback):
    """Wall and process-CPU time between consecutive optimizer steps (fetch + collate + forward + backward + step).

    On a CPU box shared with other jobs, wall time also counts the time the process waited for a core; its CPU time
    (``time.process_time``, all threads of this process) counts only the work, so it is the fairer comparison there.
    """

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._last: tuple[float, float] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = (time.perf_counter(), time.process_time())

    def on_step_end(self, args, state, control, **kwargs):
        now = (time.perf_counter(), time.process_time())
        self.wall.append(now[0] - self._last[0])
        self.cpu.append(now[1] - self._last[1])
        self._last = now


def make_rows(num_rows: int, scale: int, seed: int) -> list[dict]:
    """Triplets from cgd.testing, with the draft, critique and refined answer repeated ``scale`` times so the
    rows have CGD-like lengths (most tokens in the prompt, a long target)."""
    rows = make_triplet_rows(num_rows, seed=seed)
    for row in rows:
        for key in ("initial_response", "critique", "refined_response"):
            row[key] = "\n".join([row[key]] * scale)
    return rows


def common_args(args: argparse.Namespace, output_dir: str) -> dict:
    return dict(
        output_dir=output_dir,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
        report_to="none",
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        logging_steps=1,  # both log every step: the per-step metrics cost the same on both sides
        save_strategy="no",
        gradient_checkpointing=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=args.seed,
        max_length=args.max_length,
        padding_free=args.padding_free,
    )


def trl_args(args: argparse.Namespace, output_dir: str) -> dict:
    """Plain TRL on the pre-tokenized rows: labels from ``completion_mask``. The rows are already within
    ``max_length`` (the CGD encoder truncated them), and TRL refuses ``padding_free`` with a ``max_length`` it
    would not enforce, so padding-free runs pass ``max_length=None``."""
    kwargs = common_args(args, output_dir)
    if args.padding_free:
        kwargs["max_length"] = None
    return {**kwargs, "completion_only_loss": True}


def build_model(tokenizer, args: argparse.Namespace):
    return make_tiny_model(
        tokenizer,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        intermediate_size=args.intermediate_size,
        seed=args.seed,
    )


def _train(trainer) -> list[float]:
    """Train quietly and return the logged losses, then free the trainer before the next run."""
    trainer.remove_callback(PrinterCallback)  # no per-step printing in the timed loop
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    del trainer
    gc.collect()
    return losses


def run_cgd(rows: list[dict], tokenizer, args: argparse.Namespace, tmp: str) -> tuple[StepTimer, list[float]]:
    config = CGDConfig(**common_args(args, os.path.join(tmp, "cgd")), method="cgd")
    timer = StepTimer()
    trainer = CGDTrainer(
        model=build_model(tokenizer, args),
        args=config,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[timer],
    )
    return timer, _train(trainer)


def run_trl(encoded: datasets.Dataset, tokenizer, args: argparse.Namespace, tmp: str) -> tuple[StepTimer, list[float]]:
    config = SFTConfig(**trl_args(args, os.path.join(tmp, "trl")))
    timer = StepTimer()
    trainer = SFTTrainer(
        model=build_model(tokenizer, args),
        args=config,
        train_dataset=encoded,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    return timer, _train(trainer)


def pretokenized_for_trl(rows: list[dict], tokenizer, args: argparse.Namespace) -> tuple[datasets.Dataset, dict]:
    encoder = CGDEncoder(tokenizer, "cgd", args.max_length)
    encoded, report = encode_dataset(datasets.Dataset.from_list(rows), encoder)
    trl_rows = encoded.map(
        lambda ex: {"completion_mask": [int(label != -100) for label in ex["labels"]]},
        remove_columns=["labels", "length"],
    )
    lengths = encoded["length"]
    stats = {
        "rows": len(encoded),
        "mean_tokens": statistics.mean(lengths),
        "max_tokens": max(lengths),
        "mean_loss_tokens": statistics.mean(sum(int(label != -100) for label in lab) for lab in encoded["labels"]),
        "encoding": report.summary(),
    }
    return trl_rows, stats


def check_identical_tokens(rows, trl_rows, tokenizer, args, tmp) -> None:
    """Both trainers' training datasets hold the same input_ids and labels."""
    cgd = CGDTrainer(
        model=build_model(tokenizer, args),
        args=CGDConfig(**{**common_args(args, os.path.join(tmp, "chk")), "max_steps": 1}),
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    trl = SFTTrainer(
        model=build_model(tokenizer, args),
        args=SFTConfig(**{**trl_args(args, os.path.join(tmp, "chk")), "max_steps": 1}),
        train_dataset=trl_rows,
        processing_class=tokenizer,
    )
    assert cgd.train_dataset["input_ids"] == trl.train_dataset["input_ids"], "input_ids differ"
    assert cgd.train_dataset["labels"] == trl.train_dataset["labels"], "labels differ"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--scale", type=int, default=4, help="repeat draft/critique/answer this many times")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_length", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--warmup_steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--padding_free", action="store_true")
    parser.add_argument("--hidden_size", type=int, default=256)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--num_heads", type=int, default=4)
    parser.add_argument("--intermediate_size", type=int, default=768)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.steps <= args.warmup_steps:
        parser.error("--steps must exceed --warmup_steps")
    datasets.disable_progress_bars()

    tokenizer = make_tiny_tokenizer()
    rows = make_rows(args.rows, args.scale, args.seed)
    trl_rows, stats = pretokenized_for_trl(rows, tokenizer, args)
    n_params = sum(p.numel() for p in build_model(tokenizer, args).parameters())

    # per repeat and trainer: median step time (s), wall and CPU
    wall: dict[str, list[float]] = {"cgd": [], "trl": []}
    cpu: dict[str, list[float]] = {"cgd": [], "trl": []}
    first_losses: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        check_identical_tokens(rows, trl_rows, tokenizer, args, tmp)
        for repeat in range(args.repeats):
            order = ("cgd", "trl") if repeat % 2 == 0 else ("trl", "cgd")
            for name in order:
                if name == "cgd":
                    timer, losses = run_cgd(rows, tokenizer, args, tmp)
                else:
                    timer, losses = run_trl(trl_rows, tokenizer, args, tmp)
                wall[name].append(statistics.median(timer.wall[args.warmup_steps :]))
                cpu[name].append(statistics.median(timer.cpu[args.warmup_steps :]))
                first_losses.setdefault(name, [round(x, 4) for x in losses[:3]])
            print(
                f"repeat {repeat + 1}/{args.repeats}: wall cgd {wall['cgd'][-1] * 1e3:.1f} / trl "
                f"{wall['trl'][-1] * 1e3:.1f} ms/step; cpu cgd {cpu['cgd'][-1] * 1e3:.1f} / trl "
                f"{cpu['trl'][-1] * 1e3:.1f} ms/step",
                file=sys.stderr,
            )

    mode = "padding-free" if args.padding_free else "padded"
    device = (
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or 'x86_64'})"
    )
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"\nDevice: {device}, torch {torch.__version__}, torch threads {torch.get_num_threads()}{load}")
    print(
        f"Model: random Llama, {n_params / 1e6:.2f}M params (hidden {args.hidden_size}, {args.num_layers} layers); "
        f"{stats['rows']} rows, mean {stats['mean_tokens']:.0f} tokens (max {stats['max_tokens']}), "
        f"mean {stats['mean_loss_tokens']:.0f} loss tokens; batch {args.batch_size}, {mode}; "
        f"{args.steps} steps ({args.warmup_steps} warm-up dropped) x {args.repeats} repeats, order alternated"
    )
    print(f"Same input_ids/labels in both: yes. First losses: cgd {first_losses['cgd']}, trl {first_losses['trl']}")
    print()
    print(
        "| clock | plain TRL `SFTTrainer` (ms/step) | `CGDTrainer` (ms/step) | CGD / TRL, median of paired repeats |"
    )
    print("|---|---:|---:|---:|")
    summary = {}
    for clock, values in (("CPU time", cpu), ("wall time", wall)):
        ratios = [c / t for c, t in zip(values["cgd"], values["trl"])]
        summary[clock] = statistics.median(ratios)
        print(
            f"| {clock} | {statistics.median(values['trl']) * 1e3:.1f} | {statistics.median(values['cgd']) * 1e3:.1f} "
            f"| {summary[clock]:.3f} (repeats: {', '.join(f'{r:.3f}' for r in ratios)}) |"
        )
    print(
        f"\nCGD overhead ({mode}): {(summary['CPU time'] - 1) * 100:+.1f}% CPU time, "
        f"{(summary['wall time'] - 1) * 100:+.1f}% wall time (target: <= +3%)"
    )


if __name__ == "__main__":
    main()
