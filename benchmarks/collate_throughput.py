"""Collation throughput on CPU: the CGD encoder + collator vs TRL's own preparation of the same rows.

Both sides start from the same N synthetic triplets (``cgd.testing.make_text_rows``) with CGD-like lengths
(question ~60 words, draft ~350, critique ~250, refined answer ~400) and end with the same padded training batches:

- CGD: ``encode_dataset`` (raw triplets -> rendered, tokenized, masked; one ``datasets.map``) then
  ``CGDCollator`` (TRL's collator plus ``use_cache=False``) on the encoded rows.
- TRL: the rows as conversational prompt-completion (``prompt`` = the CGD user turn, already rendered
  from the template outside the timing, ``completion`` = the refined answer), through
  ``SFTTrainer._prepare_dataset`` (the exact code ``SFTTrainer.__init__`` runs: chat template, tokenize,
  completion mask, labels, truncation) then ``DataCollatorForLanguageModeling``.

It also checks that both produce identical ``input_ids``/``labels``, so the rows/s compare like for like.

    python benchmarks/collate_throughput.py --rows 2000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from types import SimpleNamespace

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402
import torch  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling  # noqa: E402

from cgd import schema  # noqa: E402
from cgd.collator import CGDCollator, CGDEncoder, encode_dataset  # noqa: E402
from cgd.templates import build_user_message  # noqa: E402
from cgd.testing import make_text_rows, make_tiny_tokenizer  # noqa: E402


def word_counts(rng: random.Random) -> tuple[int, int, int, int]:
    """Question, draft, critique and refined answer lengths in words, uniform around CGD's typical lengths."""
    return rng.randint(30, 90), rng.randint(200, 500), rng.randint(150, 350), rng.randint(250, 550)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=4096)
    args = parser.parse_args()

    datasets.disable_caching()
    datasets.disable_progress_bars()
    torch.set_num_threads(1)
    tok = make_tiny_tokenizer()
    rows = make_text_rows(args.rows, word_counts, number_rate=0.15)
    raw = datasets.Dataset.from_list(rows)
    pc = datasets.Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": build_user_message("cgd", r)}],
                "completion": [{"role": "assistant", "content": r[schema.REFINED_RESPONSE]}],
            }
            for r in rows
        ]
    )

    encoder = CGDEncoder(tok, max_length=args.max_length)
    trl_args = SFTConfig(
        output_dir=tempfile.mkdtemp(),
        max_length=args.max_length,
        report_to=[],
        shuffle_dataset=False,
        bf16=False,
        use_cpu=True,
    )
    # The attributes `_prepare_dataset` reads from the trainer, as `SFTTrainer.__init__` sets them for this data.
    trl_self = SimpleNamespace(_tokenizer=tok, chat_template=None, completion_only_loss=True)

    def cgd_prepare():
        return encode_dataset(raw, encoder)[0]

    def trl_prepare():
        return SFTTrainer._prepare_dataset(trl_self, pc, tok, trl_args, False, None, "train")

    t_cgd_prep, cgd_ds = timed(cgd_prepare, args.repeats)
    t_trl_prep, trl_ds = timed(trl_prepare, args.repeats)

    cgd_items = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in cgd_ds]
    trl_items = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in trl_ds]
    # TRL keeps the chat template's "\n" after <|im_end|> in the completion (one more learned token);
    # CGD ends the target at the end-of-turn token. Everything before it must match token for token.
    identical = sum(
        b["input_ids"][: len(a["input_ids"])] == a["input_ids"]
        and b["labels"][: len(a["labels"])] == a["labels"]
        and tok.decode(b["input_ids"][len(a["input_ids"]) :]).strip() == ""
        for a, b in zip(cgd_items, trl_items, strict=True)
    )
    n_tokens = [len(x["input_ids"]) for x in cgd_items]

    pad_id = tok.pad_token_id
    collators = {
        "padded": (CGDCollator(pad_token_id=pad_id), DataCollatorForLanguageModeling(pad_token_id=pad_id)),
        "padding-free": (
            CGDCollator(pad_token_id=pad_id, padding_free=True),
            DataCollatorForLanguageModeling(pad_token_id=pad_id, padding_free=True),
        ),
    }
    results = [("prepare (tokenize + mask, datasets.map)", t_cgd_prep, t_trl_prep)]
    for name, (ours, theirs) in collators.items():
        t_ours, _ = timed(lambda c=ours: [c(b) for b in batches(cgd_items, args.batch_size)], args.repeats)
        t_theirs, _ = timed(lambda c=theirs: [c(b) for b in batches(trl_items, args.batch_size)], args.repeats)
        results.append((f"collate, {name}, batch {args.batch_size}", t_ours, t_theirs))
    t_e2e_ours = results[0][1] + results[1][1]
    t_e2e_theirs = results[0][2] + results[1][2]
    results.append(("end to end (prepare + padded collate)", t_e2e_ours, t_e2e_theirs))

    n = args.rows
    print(
        f"rows={n} repeats={args.repeats} (median) tokens/row mean={statistics.mean(n_tokens):.0f} "
        f"max={max(n_tokens)} | identical input_ids+labels CGD vs TRL (but TRL's trailing newline): {identical}/{n} | "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}"
    )
    print()
    print("| stage | CGD rows/s | TRL rows/s | CGD time / TRL time |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs in results:
        print(f"| {name} | {n / ours:,.0f} | {n / theirs:,.0f} | {ours / theirs:.3f} |")


if __name__ == "__main__":
    main()
