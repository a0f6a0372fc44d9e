"""The embedded question set: seeded arithmetic and word problems with exact integer answers.

The project generates these itself (nothing is copied from a public dataset), so the demo runs offline.
Templates cover multi-step arithmetic, word problems about apples, money, time and rates, percentages
and simple linear equations. Every answer is an integer computed from the drawn numbers.

Splits are disjoint by construction: the eval split is drawn first from its own seed stream, and the
train split skips any question text already in it, so changing ``--num_train`` never changes the eval
split and no question appears in both.

    python -m cgd.demo.questions --output_dir data/questions --num_train 64 --num_eval 50 --seed 0

writes ``train.jsonl`` and ``eval.jsonl`` with columns ``id``, ``question``, ``answer`` (a string holding
the integer) and ``category``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

NAMES = ("Mia", "Noah", "Ava", "Liam", "Zoe", "Omar", "Lena", "Ravi", "Sofia", "Kenji", "Amara", "Tom")
FRUITS = ("apples", "oranges", "pears", "plums", "lemons")
ITEMS = (("notebook", "pen"), ("sandwich", "juice"), ("ticket", "poster"), ("book", "bookmark"))

#: (question, integer answer, worked solution ending in ``\boxed{answer}``)
Problem = tuple[str, int, str]


def _solution(*steps: str, answer: int) -> str:
    return " ".join(steps) + f" The answer is \\boxed{{{answer}}}."


def multi_step(rng: random.Random) -> Problem:
    """(a + b) x c - d, written out."""
    a, b, c = rng.randint(2, 30), rng.randint(2, 30), rng.randint(2, 9)
    d = rng.randint(1, (a + b) * c - 1)
    ans = (a + b) * c - d
    steps = (
        f"First {a} + {b} = {a + b}.",
        f"Then {a + b} × {c} = {(a + b) * c}.",
        f"Finally {(a + b) * c} − {d} = {ans}.",
    )
    return f"Compute ({a} + {b}) × {c} − {d}.", ans, _solution(*steps, answer=ans)


def two_step(rng: random.Random) -> Problem:
    """a × b + c."""
    a, b, c = rng.randint(2, 19), rng.randint(2, 12), rng.randint(1, 99)
    sol = _solution(f"{a} × {b} = {a * b}.", f"{a * b} + {c} = {a * b + c}.", answer=a * b + c)
    return f"What is {a} × {b} + {c}?", a * b + c, sol


def apples(rng: random.Random) -> Problem:
    """Start, buy bags, give some away."""
    name, fruit = rng.choice(NAMES), rng.choice(FRUITS)
    start, bags, per_bag = rng.randint(2, 20), rng.randint(2, 6), rng.randint(3, 12)
    give = rng.randint(1, start + bags * per_bag - 1)
    question = (
        f"{name} has {start} {fruit}. {name} buys {bags} bags with {per_bag} {fruit} in each bag and then "
        f"gives {give} {fruit} to a friend. How many {fruit} does {name} have now?"
    )
    ans = start + bags * per_bag - give
    sol = _solution(
        f"The bags hold {bags} × {per_bag} = {bags * per_bag} {fruit}.",
        f"With the {start} {fruit} {name} had, that makes {start} + {bags * per_bag} = {start + bags * per_bag}.",
        f"After giving {give} away, {start + bags * per_bag} − {give} = {ans}.",
        answer=ans,
    )
    return question, ans, sol


def money(rng: random.Random) -> Problem:
    """Change from a bill after buying two kinds of items."""
    name, (item1, item2) = rng.choice(NAMES), rng.choice(ITEMS)
    p1, p2, n1, n2 = rng.randint(2, 15), rng.randint(1, 9), rng.randint(1, 5), rng.randint(1, 5)
    total = p1 * n1 + p2 * n2
    bill = next(b for b in (20, 50, 100, 200) if b > total)
    question = (
        f"A {item1} costs ${p1} and a {item2} costs ${p2}. {name} buys {n1} {item1}s and {n2} {item2}s "
        f"and pays with a ${bill} bill. How many dollars of change does {name} get?"
    )
    sol = _solution(
        f"The {item1}s cost {n1} × ${p1} = ${p1 * n1} and the {item2}s cost {n2} × ${p2} = ${p2 * n2}.",
        f"The total is ${p1 * n1} + ${p2 * n2} = ${total}.",
        f"The change is ${bill} − ${total} = ${bill - total}.",
        answer=bill - total,
    )
    return question, bill - total, sol


def time_minutes(rng: random.Random) -> Problem:
    """Total minutes of a trip made several times."""
    name, hours, minutes, trips = rng.choice(NAMES), rng.randint(1, 3), rng.randint(5, 55), rng.randint(2, 6)
    question = (
        f"A bus trip takes {hours} hours and {minutes} minutes. {name} makes the trip {trips} times in a week. "
        f"How many minutes does {name} spend on the bus that week?"
    )
    one = 60 * hours + minutes
    sol = _solution(
        f"One trip takes {hours} × 60 + {minutes} = {one} minutes.",
        f"{trips} trips take {trips} × {one} = {trips * one} minutes.",
        answer=trips * one,
    )
    return question, trips * one, sol


def rates(rng: random.Random) -> Problem:
    """Distance over two legs at different speeds."""
    name, v1, t1, v2, t2 = (
        rng.choice(NAMES),
        rng.randint(3, 20),
        rng.randint(1, 5),
        rng.randint(3, 20),
        rng.randint(1, 5),
    )
    question = (
        f"{name} cycles at {v1} km per hour for {t1} hours and then at {v2} km per hour for {t2} hours. "
        f"How many kilometers does {name} cycle in total?"
    )
    sol = _solution(
        f"The first part is {v1} × {t1} = {v1 * t1} km and the second part is {v2} × {t2} = {v2 * t2} km.",
        f"In total {v1 * t1} + {v2 * t2} = {v1 * t1 + v2 * t2} km.",
        answer=v1 * t1 + v2 * t2,
    )
    return question, v1 * t1 + v2 * t2, sol


def percentage(rng: random.Random) -> Problem:
    """Sale price after a percent discount (always a whole number of dollars)."""
    pct = rng.choice((10, 20, 25, 40, 50, 75))
    step = {10: 10, 20: 5, 25: 4, 40: 5, 50: 2, 75: 4}[pct]
    price = step * rng.randint(3, 40)
    question = f"A jacket costs ${price}. It is on sale for {pct}% off. What is the sale price in dollars?"
    off = price * pct // 100
    sol = _solution(
        f"The discount is {pct}% of ${price}, which is ${price} × {pct} / 100 = ${off}.",
        f"The sale price is ${price} − ${off} = ${price - off}.",
        answer=price - off,
    )
    return question, price - off, sol


def percent_of(rng: random.Random) -> Problem:
    """p% of n (whole-number result)."""
    pct = rng.choice((10, 20, 25, 30, 50, 60, 75))
    n = 20 * rng.randint(1, 25)
    sol = _solution(f"{pct}% of {n} is {n} × {pct} / 100 = {pct * n // 100}.", answer=pct * n // 100)
    return f"What is {pct}% of {n}?", pct * n // 100, sol


def equation(rng: random.Random) -> Problem:
    """a·x + b = c with a whole-number solution."""
    a, x, b = rng.randint(2, 12), rng.randint(1, 20), rng.randint(1, 50)
    sol = _solution(
        f"Subtract {b} from both sides: {a}x = {a * x + b} − {b} = {a * x}.",
        f"Divide by {a}: x = {a * x} / {a} = {x}.",
        answer=x,
    )
    return f"Solve for x: {a}x + {b} = {a * x + b}.", x, sol


def sharing(rng: random.Random) -> Problem:
    """Equal sharing after adding two amounts."""
    name, friends, each = rng.choice(NAMES), rng.randint(2, 8), rng.randint(2, 15)
    total = friends * each
    first = rng.randint(1, total - 1)
    question = (
        f"{name} bakes {first} cookies in the morning and {total - first} cookies in the afternoon, then shares "
        f"all of them equally among {friends} friends. How many cookies does each friend get?"
    )
    sol = _solution(
        f"{name} bakes {first} + {total - first} = {total} cookies.",
        f"Shared among {friends} friends, each gets {total} / {friends} = {each}.",
        answer=each,
    )
    return question, each, sol


#: Category name -> generator. Order matters for reproducibility (drawn by index).
TEMPLATES: dict[str, Callable[[random.Random], Problem]] = {
    "multi_step": multi_step,
    "two_step": two_step,
    "apples": apples,
    "money": money,
    "time": time_minutes,
    "rates": rates,
    "percentage": percentage,
    "percent_of": percent_of,
    "equation": equation,
    "sharing": sharing,
}


def _draw(rng: random.Random, count: int, split: str, exclude: set[str]) -> list[dict]:
    rows: list[dict] = []
    seen = set(exclude)
    names = list(TEMPLATES)
    attempts = 0
    while len(rows) < count:
        attempts += 1
        if attempts > 1000 * max(count, 1):
            raise RuntimeError(f"Could not draw {count} distinct questions for split {split!r}")
        category = names[len(rows) % len(names)] if rng.random() < 0.5 else rng.choice(names)
        question, answer, solution = TEMPLATES[category](rng)
        if question in seen:
            continue
        seen.add(question)
        row_id = f"{split}-{len(rows):05d}"
        rows.append(
            {"id": row_id, "question": question, "answer": str(answer), "solution": solution, "category": category}
        )
    return rows


def generate_splits(num_train: int, num_eval: int, seed: int = 0) -> dict[str, list[dict]]:
    """Disjoint ``train`` and ``eval`` splits; eval depends only on ``seed`` and ``num_eval``."""
    eval_rows = _draw(random.Random(f"cgd-eval-{seed}"), num_eval, "eval", set())
    train_rows = _draw(random.Random(f"cgd-train-{seed}"), num_train, "train", {r["question"] for r in eval_rows})
    return {"train": train_rows, "eval": eval_rows}


def write_jsonl(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write_splits(output_dir: str | Path, num_train: int, num_eval: int, seed: int = 0) -> dict[str, Path]:
    """Write ``train.jsonl`` and ``eval.jsonl`` under ``output_dir``; returns their paths."""
    output_dir = Path(output_dir)
    paths = {}
    for split, rows in generate_splits(num_train, num_eval, seed).items():
        paths[split] = output_dir / f"{split}.jsonl"
        write_jsonl(rows, paths[split])
    return paths


@dataclass
class QuestionsArguments:
    """Settings of ``python -m cgd.demo.questions``."""

    output_dir: str = field(default="data/questions", metadata={"help": "Where train.jsonl and eval.jsonl go."})
    num_train: int = field(default=64, metadata={"help": "Questions in the build (train) split."})
    num_eval: int = field(default=50, metadata={"help": "Questions in the held-out split (drawn first, disjoint)."})
    seed: int = field(default=0, metadata={"help": "Seed of both splits."})


def main(argv: list[str] | None = None) -> None:
    from cgd.demo import parse_arguments

    args = parse_arguments(QuestionsArguments, argv, "python -m cgd.demo.questions")
    for split, path in write_splits(args.output_dir, args.num_train, args.num_eval, args.seed).items():
        print(f"{split}: {path}")


if __name__ == "__main__":
    main()
