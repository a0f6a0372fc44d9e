"""``CGDTrainer``: TRL's ``SFTTrainer`` fed by the CGD collator.

The trainer extends ``SFTTrainer`` at three seams and leaves the rest (loss, fused LM head, metrics, PEFT,
DeepSpeed/FSDP, saving, Hub push) to TRL:

1. **Data.** Raw triplet rows are validated (:func:`cgd.data.validate_triplets`) and tokenized once in a cached
   ``datasets.map`` (:func:`cgd.collator.encode_dataset`) under ``main_process_first``, so with several processes the
   main one encodes and the others read its cache. TRL's own preparation is skipped (``skip_prepare_dataset``).
2. **Collation.** :class:`cgd.collator.CGDCollator` (TRL's ``DataCollatorForLanguageModeling`` plus ``use_cache=False``)
   pads (or, with ``padding_free``, flattens) the pre-encoded rows. TRL 1.16 refuses a custom collator when
   ``args.padding_free`` is set, so the flag is handed to the collator and hidden from ``SFTTrainer.__init__``
   (restored right after, so ``args`` and saved configs still read ``padding_free: true``).
3. **Stopping.** The end-of-turn token the targets end with is added to the model's ``generation_config.eos_token_id``,
   so the trained student stops at the end of its turn.

Tokenizer settings TRL applies inside ``SFTTrainer.__init__`` (``chat_template_path``, ``eos_token``, ``pad_token``)
would come after the rows were encoded, so the trainer applies them to the tokenizer before encoding. The model card is
CGD's own, built with huggingface_hub's ``ModelCard``/``ModelCardData``.
"""

from __future__ import annotations

import os
import re
import textwrap
from importlib.metadata import version
from typing import Any

from accelerate.utils import is_peft_model
from datasets import Dataset
from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging
from trl import SFTTrainer

from cgd.ablations import apply_critique_ablation
from cgd.collator import CGDCollator, CGDEncoder, encode_dataset, end_of_turn
from cgd.config import CGDConfig
from cgd.data import RowReport, validate_triplets
from cgd.schema import get_method
from cgd.templates import PromptTemplates

logger = logging.get_logger(__name__)


def end_of_turn_token_id(tokenizer: PreTrainedTokenizerBase, templates: PromptTemplates | None = None) -> int:
    """The id of the token every CGD target ends with: the chat template's end-of-turn token, or EOS without one
    (see :func:`cgd.collator.end_of_turn`)."""
    return end_of_turn(tokenizer, templates)[0]


def hub_model_id_of(name_or_path: str | None) -> str | None:
    """The Hub id a model was loaded from, when it can be told: a Hub id itself, or a folder of the Hub cache
    (``.../models--org--name/snapshots/<sha>``); ``None`` for any other local folder (never a local path)."""
    if not name_or_path:
        return None
    cached = re.search(r"models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]", name_or_path)
    if cached:
        return f"{cached.group(1)}/{cached.group(2)}"
    if os.path.exists(os.path.expanduser(name_or_path)) or name_or_path.startswith((".", "/", "~")):
        return None
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        return None
    return name_or_path


def apply_tokenizer_settings(tokenizer: PreTrainedTokenizerBase, args: CGDConfig) -> None:
    """Apply the config's tokenizer settings before the rows are encoded.

    ``SFTTrainer.__init__`` applies ``chat_template_path`` and ``eos_token`` itself, but only after CGD has encoded the
    rows (it would train in one format and save another), and ignores ``pad_token`` when a collator is given. TRL
    applies the first two again later; that is idempotent.
    """
    if args.chat_template_path is not None:  # a .jinja/.j2 file (CGDConfig refuses tokenizer paths)
        with open(args.chat_template_path, encoding="utf-8") as f:
            tokenizer.chat_template = f.read()
    for name in ("eos_token", "pad_token"):
        token = getattr(args, name)
        if token is None:
            continue
        if token not in tokenizer.get_vocab():
            raise ValueError(f"`{name}: {token}` is not a token of the tokenizer's vocabulary.")
        setattr(tokenizer, name, token)


def prepare_cgd_dataset(
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    args: CGDConfig,
    templates: PromptTemplates | None = None,
    name: str = "train",
) -> tuple[Dataset, RowReport, RowReport]:
    """Validate and encode raw triplet rows for ``args.method``.

    Returns the encoded dataset (``input_ids``, ``labels``, ``length``) with the validation and encoding reports. Rows
    that fail validation raise :class:`cgd.data.TripletValidationError` unless ``args.drop_invalid_rows``; rows whose
    target cannot fit ``args.max_length`` are dropped by the encoder and counted in its report.
    """
    templates = templates or args.prompt_templates()
    with args.main_process_first(desc=f"CGD encoding of the {name} dataset"):
        dataset, validation = validate_triplets(dataset, args.method, drop_invalid=args.drop_invalid_rows)
        dataset = apply_critique_ablation(dataset, args.critique_ablation, args.critique_ablation_seed)
        encoder = CGDEncoder(tokenizer, args.method, args.max_length, templates, args.truncation_marker)
        dataset, encoding = encode_dataset(dataset, encoder, num_proc=args.dataset_num_proc)
    # cgd.data and cgd.collator already warn when they drop or truncate rows; this is the one-line tally.
    logger.info(f"CGD {name} dataset, method {args.method!r}: {validation.summary()} {encoding.summary()}")
    if len(dataset) == 0:
        raise ValueError(
            f"No {name} rows left to train {args.method!r} on. {validation.summary()} {encoding.summary()}"
        )
    return dataset, validation, encoding


class CGDTrainer(SFTTrainer):
    """Trainer for Critique-Guided Distillation and its baselines (see :class:`~cgd.config.CGDConfig`).

    Takes raw triplet datasets (the schema of :mod:`cgd.schema`); ``args.method`` selects which view of them is
    trained. Everything else is [`~trl.SFTTrainer`]'s. After construction, ``validation_reports`` and
    ``encoding_reports`` hold, per dataset name, how many rows were kept, truncated or dropped and why.

    Example:

    ```python
    from cgd.config import CGDConfig
    from cgd.data import load_triplets
    from cgd.trainer import CGDTrainer

    trainer = CGDTrainer(
        model="meta-llama/Llama-3.1-8B-Instruct",
        args=CGDConfig(output_dir="llama-cgd", method="cgd", learning_rate=1e-6),
        train_dataset=load_triplets("org/cgd-webinstruct"),
    )
    trainer.train()
    ```
    """

    _tag_names = ["trl", "sft", "cgd", "critique-guided-distillation"]
    _name = "CGD"
    _paper = {
        "title": "Critique-Guided Distillation for Robust Reasoning via Refinement",
        "id": "2505.11628",
        # docstyle-ignore
        "citation": textwrap.dedent("""\
            @inproceedings{kapusuzoglu2026cgd,
                title        = {{Critique-Guided Distillation for Robust Reasoning via Refinement}},
                author       = {Berkcan Kapusuzoglu and Supriyo Chakraborty and Zain Sarwar and Chia-Hsuan Lee and Sambit Sahu},
                year         = 2026,
                booktitle    = {Proceedings of the 43rd International Conference on Machine Learning (ICML)},
                eprint       = {arXiv:2505.11628},
            }"""),
    }

    def __init__(
        self,
        model,
        args: CGDConfig | None = None,
        data_collator=None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        **kwargs,
    ):
        if args is None:
            model_name = model if isinstance(model, str) else model.config._name_or_path
            args = CGDConfig(f"{model_name.split('/')[-1]}-CGD")
        elif not isinstance(args, CGDConfig):
            raise TypeError(f"`args` must be a CGDConfig, got {type(args).__name__}.")
        if not isinstance(train_dataset, Dataset):
            raise TypeError(
                "`train_dataset` must be a `datasets.Dataset` of triplet rows (see cgd.data.load_triplets), "
                f"got {type(train_dataset).__name__}."
            )
        if "formatting_func" in kwargs:
            raise ValueError("CGDTrainer renders rows with its prompt templates; `formatting_func` is not supported.")

        if processing_class is None:
            model_id = model if isinstance(model, str) else model.config._name_or_path
            init_kwargs = args.model_init_kwargs or {}
            processing_class = AutoTokenizer.from_pretrained(
                model_id, revision=init_kwargs.get("revision"), trust_remote_code=args.trust_remote_code
            )
        if not isinstance(processing_class, PreTrainedTokenizerBase):
            raise TypeError("CGDTrainer trains text-only students: `processing_class` must be a tokenizer.")
        tokenizer = processing_class
        apply_tokenizer_settings(tokenizer, args)
        if tokenizer.pad_token is None:  # as SFTTrainer would do; the collator needs it now
            tokenizer.pad_token = tokenizer.eos_token

        get_method(args.method)
        templates = args.prompt_templates()
        #: The Hub id of the base model (for the card), ``None`` when it was loaded from a local folder.
        self.base_model_id = hub_model_id_of(model if isinstance(model, str) else model.config._name_or_path)
        #: What the model card names as the training data and the recipe (set by ``cgd.train``).
        self.card_datasets: list[str] = []
        self.recipe: str | None = None
        self.validation_reports: dict[str, RowReport] = {}
        self.encoding_reports: dict[str, RowReport] = {}
        train_dataset = self._prepare_cgd("train", train_dataset, tokenizer, args, templates)
        if isinstance(eval_dataset, dict):
            eval_dataset = {
                key: self._prepare_cgd(key, dataset, tokenizer, args, templates)
                for key, dataset in eval_dataset.items()
            }
        elif eval_dataset is not None:
            eval_dataset = self._prepare_cgd("eval", eval_dataset, tokenizer, args, templates)

        if data_collator is None:
            data_collator = CGDCollator(
                pad_token_id=tokenizer.pad_token_id,
                padding_free=args.padding_free,
                pad_to_multiple_of=args.pad_to_multiple_of,
            )

        # The padding-free seam: the CGD collator flattens the batch itself, so TRL's refusal of custom collators in
        # padding-free mode (and its own padding-free set-up) must not see the flag.
        padding_free = args.padding_free
        args.padding_free = False
        try:
            super().__init__(
                model,
                args=args,
                data_collator=data_collator,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                **kwargs,
            )
        finally:
            args.padding_free = padding_free
        self.padding_free = padding_free

        self.end_of_turn_token_id = end_of_turn_token_id(tokenizer, templates)
        self._add_eos_to_generation_config(self.end_of_turn_token_id)

    def _prepare_cgd(self, name, dataset, tokenizer, args, templates) -> Dataset:
        dataset, self.validation_reports[name], self.encoding_reports[name] = prepare_cgd_dataset(
            dataset, tokenizer, args, templates, name
        )
        return dataset

    def _add_eos_to_generation_config(self, token_id: int) -> None:
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        generation_config = model.generation_config
        eos = generation_config.eos_token_id
        eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        if token_id not in eos:
            generation_config.eos_token_id = [token_id, *eos] if eos else token_id
        if generation_config.pad_token_id is None:
            generation_config.pad_token_id = self.processing_class.pad_token_id

    def create_model_card(
        self,
        model_name: str | None = None,
        dataset_name: str | list[str] | None = None,
        tags: str | list[str] | None = None,
        **kwargs,
    ) -> None:
        """Write ``README.md``: a card built with huggingface_hub's ``ModelCard``/``ModelCardData``.

        Metadata: ``base_model`` (only when it is a known Hub id), ``datasets`` (Hub ids), ``library_name`` (``peft``
        for an adapter), ``license`` (``model_license``), tags with the method, and the paper; the body says how the
        model was trained (method, recipe, hyper-parameters, rows kept/truncated/dropped) and how to cite CGD.
        """
        if not self.is_world_process_zero():
            return
        datasets = [dataset_name] if isinstance(dataset_name, str) else list(dataset_name or self.card_datasets)
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        model_name = model_name or os.path.basename(os.path.normpath(self.args.output_dir))
        is_adapter = is_peft_model(self.model)
        spec = get_method(self.args.method)
        card_tags = ["generated_from_trainer", *self._tag_names, self.args.method, f"arxiv:{self._paper['id']}"]
        card_tags += [t for t in tags if t not in card_tags]
        card_data = ModelCardData(
            base_model=self.base_model_id,
            datasets=datasets or None,
            library_name="peft" if is_adapter else "transformers",
            license=self.args.model_license,
            model_name=model_name,
            pipeline_tag="text-generation",
            tags=card_tags,
        )
        base = f"[{self.base_model_id}](https://huggingface.co/{self.base_model_id})" if self.base_model_id else None
        data = ", ".join(f"[{d}](https://huggingface.co/datasets/{d})" for d in datasets)
        intro = (
            ("A fine-tuned version of " + base if base else "A model fine-tuned")
            + (f" on {data}" if data else "")
            + f" with Critique-Guided Distillation (CGD, [arXiv:{self._paper['id']}]"
            f"(https://huggingface.co/papers/{self._paper['id']})), method `{spec.name}`"
            + (" (a LoRA adapter)" if is_adapter else "")
            + ", trained with [TRL](https://github.com/huggingface/trl)."
        )
        card = ModelCard.from_template(
            card_data,
            template_str=MODEL_CARD_TEMPLATE,
            model_name=model_name,
            intro=intro,
            model_ref=self.hub_model_id or self.args.hub_model_id or model_name,
            procedure=self._training_procedure(spec, is_adapter),
            cgd_citation=self._paper["citation"],
            versions={p: version(p) for p in ("trl", "transformers", "torch", "datasets", "tokenizers")},
        )
        card.save(os.path.join(self.args.output_dir, "README.md"))

    def _training_procedure(self, spec: Any, is_adapter: bool) -> str:
        args = self.args
        world = max(args.world_size, 1)
        precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
        rows = [
            ("method", f"`{spec.name}`: {spec.description} (inputs {', '.join(spec.inputs)}; target `{spec.target}`)"),
            ("recipe", f"`{self.recipe}`" if self.recipe else "(set in Python)"),
            (
                "learning rate",
                f"{args.learning_rate:g} ({getattr(args.lr_scheduler_type, 'value', args.lr_scheduler_type)}, "
                f"warm-up {args.warmup_steps})",
            ),
            (
                "length",
                f"{args.max_steps} step(s)" if args.max_steps > 0 else f"{args.num_train_epochs:g} epoch(s)",
            ),
            (
                "global batch",
                f"{args.per_device_train_batch_size * args.gradient_accumulation_steps * world} = "
                f"{args.per_device_train_batch_size} per device x {args.gradient_accumulation_steps} accumulation x "
                f"{world} process(es)",
            ),
            ("max_length", str(args.max_length)),
            ("precision", precision + (", padding-free batches" if self.padding_free else "")),
            ("seed", str(args.seed)),
        ]
        if is_adapter:
            peft_config = next(iter(self.model.peft_config.values()))
            rows.append(
                (
                    "adapter",
                    f"LoRA r={getattr(peft_config, 'r', '?')}, alpha={getattr(peft_config, 'lora_alpha', '?')}",
                )
            )
        table = "| setting | value |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        counts = "\n".join(
            f"- {name}: {self.validation_reports[name].summary()} {report.summary()}"
            for name, report in self.encoding_reports.items()
        )
        return (
            f"The student saw the method's inputs in one user turn of its chat template and learned the target; the loss "
            f"falls on the target and its end-of-turn token only (id {getattr(self, 'end_of_turn_token_id', None)}, "
            "which the saved generation config stops at). At inference the model sees only the question, in its usual "
            f"chat format.\n\n{table}\n\nData:\n\n{counts}\n"
        )


MODEL_CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

{{ intro }}

## Quick start

```python
from transformers import pipeline

generator = pipeline("text-generation", model="{{ model_ref }}")
question = "What is the sum of the first 10 positive odd numbers? Put the final answer in \\boxed{}."
output = generator([{"role": "user", "content": question}], max_new_tokens=1024, return_full_text=False)[0]
print(output["generated_text"])
```

## Training procedure

{{ procedure }}
### Framework versions

{% for name, v in versions.items() %}- {{ name }}: {{ v }}
{% endfor %}
## Citations

Cite Critique-Guided Distillation as:

```bibtex
{{ cgd_citation }}
```

Cite TRL as:

```bibtex
{% raw %}@software{vonwerra2020trl,
  title   = {{TRL: Transformers Reinforcement Learning}},
  author  = {von Werra, Leandro and Belkada, Younes and Tunstall, Lewis and Beeching, Edward and Thrush, Tristan and Lambert, Nathan and Huang, Shengyi and Rasul, Kashif and Gallou\u00e9dec, Quentin},
  license = {Apache-2.0},
  url     = {https://github.com/huggingface/trl},
  year    = {2020}
}{% endraw %}
```
"""
