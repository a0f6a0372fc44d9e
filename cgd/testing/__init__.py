"""Tiny offline models and synthetic rows for tests and benchmarks: a BPE tokenizer trained on the spot, random
Llamas, and CGD triplets (short arithmetic ones, or long word-salad ones of any length distribution).

Nothing here touches the network. The tokenizer carries a ChatML chat template (SmolLM2's layout),
so everything that renders through ``apply_chat_template`` is exercised as it would be for a real
instruct model.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

#: Words the tiny tokenizer is trained on; synthetic text draws from the same list, so it tokenizes compactly.
WORDS = (
    "the a question answer student teacher critique step final boxed is are of to and in that it for with "
    "right wrong conclusion solve compute total each number sum product difference equation value so "
    "therefore because first then next finally let we have get add subtract multiply divide apples cost "
    "price times plus minus equals half twice more less how many much"
).split()


def _corpus(num_lines: int = 2000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(num_lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(5, 20))]
        nums = [str(rng.randint(0, 999)) for _ in range(rng.randint(0, 4))]
        lines.append(" ".join(words + nums) + rng.choice([".", "?", "!", ":", " \\boxed{7}", "\n"]))
    return lines


def make_tiny_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer (``PreTrainedTokenizerFast``) with a ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def make_tiny_model(
    tokenizer,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 128,
    seed: int = 0,
):
    """A random-init ``LlamaForCausalLM`` sized for ``tokenizer``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, max_new_tokens=32
    )
    return model


def save_tiny_checkpoint(output_dir: str | Path, **model_kwargs) -> Path:
    """Write a tiny tokenizer + random model to ``output_dir`` (loadable with ``from_pretrained``)."""
    output_dir = Path(output_dir)
    tokenizer = make_tiny_tokenizer()
    model = make_tiny_model(tokenizer, **model_kwargs)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def make_triplet_rows(num_rows: int = 16, seed: int = 0, repeat: int = 1) -> list[dict]:
    """Synthetic CGD rows with every schema column filled, for tests of the training path.

    ``repeat`` > 1 writes the draft, critique and refined answer that many times (joined by newlines), for rows with
    CGD's proportions: most tokens in the prompt, a long target.
    """
    from cgd import schema

    rng = random.Random(seed)
    rows = []
    for i in range(num_rows):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        wrong = rng.random() < 0.5
        draft = a + b + (rng.randint(1, 9) if wrong else 0)
        row = {
            schema.ID: f"row-{i}",
            schema.QUESTION: f"How many apples are {a} apples plus {b} apples?",
            schema.REFERENCE_ANSWER: str(a + b),
            schema.INITIAL_RESPONSE: f"We add {a} and {b} to get {draft}. The answer is {draft}.",
            schema.CRITIQUE: (
                f"The student adds {a} and {b}. The sum is {a + b}, so the answer {draft} is "
                f"{'wrong' if wrong else 'right'}.\nConclusion: {'wrong' if wrong else 'right'}"
            ),
            schema.VERDICT: "wrong" if wrong else "right",
            schema.REFINED_RESPONSE: f"First add {a} and {b}: {a} + {b} = {a + b}. So the answer is \\boxed{{{a + b}}}.",
            schema.TEACHER_ANSWER: f"{a} plus {b} is {a + b}. The answer is \\boxed{{{a + b}}}.",
            schema.SOURCE: "synthetic",
            schema.SOURCE_ID: str(i),
            schema.STUDENT_MODEL: "tiny-student",
            schema.TEACHER_MODEL: "tiny-teacher",
        }
        for stage in schema.STAGES:
            row[schema.finish_reason_column(stage)] = "stop"
            row[schema.num_tokens_column(stage)] = 10
        if repeat > 1:
            for key in (schema.INITIAL_RESPONSE, schema.CRITIQUE, schema.REFINED_RESPONSE):
                row[key] = "\n".join([row[key]] * repeat)
        rows.append(row)
    return rows


def synthetic_text(rng: random.Random, num_words: int, number_rate: float = 0.04) -> str:
    """``num_words`` words from :data:`WORDS` (a number in place of a word at ``number_rate``), punctuated every 17."""
    words = []
    for i in range(max(1, num_words)):
        words.append(str(rng.randint(0, 999)) if rng.random() < number_rate else rng.choice(WORDS))
        if i % 17 == 16:
            words[-1] += rng.choice([".", ",", ":", "\n"])
    return " ".join(words)


def make_text_rows(
    num_rows: int,
    word_counts: Callable[[random.Random], tuple[int, int, int, int]],
    seed: int = 0,
    number_rate: float = 0.04,
) -> list[dict]:
    """Triplet rows of synthetic text, every schema column filled, for benchmarks at realistic lengths.

    ``word_counts(rng)`` gives each row's (question, draft, critique, refined answer) word counts, so the caller
    chooses the length distribution; the critique ends with a ``Conclusion:`` line matching a random verdict.
    """
    from cgd import schema

    base = make_triplet_rows(1)[0]
    rng = random.Random(seed)
    rows = []
    for i in range(num_rows):
        question, draft, critique, answer = word_counts(rng)
        verdict = rng.choice(["right", "wrong"])
        row = dict(base)
        row[schema.ID] = f"bench-{i}"
        row[schema.QUESTION] = synthetic_text(rng, question, number_rate)
        row[schema.INITIAL_RESPONSE] = synthetic_text(rng, draft, number_rate)
        row[schema.CRITIQUE] = synthetic_text(rng, critique, number_rate) + f"\nConclusion: {verdict}"
        row[schema.VERDICT] = verdict
        row[schema.REFINED_RESPONSE] = synthetic_text(rng, answer, number_rate)
        rows.append(row)
    return rows


def offline_subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child process that must stay offline, single-threaded and quiet about
    tokenizers' fork warnings (tests and benchmarks that run a CLI in a subprocess)."""
    import os

    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    env.update(extra)
    return env
