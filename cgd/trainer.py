"""``CGDTrainer``: TRL's ``SFTTrainer`` fed by the CGD collator.

The trainer extends ``SFTTrainer`` at three seams and leaves the rest (loss, fused LM head, metrics, PEFT,
DeepSpeed/FSDP, saving, Hub push) to TRL:

1. **Data.** Raw triplet rows are validated (:func:`cgd.data.validate_triplets`) and tokenized once in a cached
   ``datasets.map`` (:func:`cgd.collator.encode_dataset`) under ``main_process_first``, so with several processes the
   main one encodes and the others read its cache. TRL's own preparation is skipped (``skip_prepare_dataset``).
2. **Collation.** :class:`cgd.collator.CGDCollator` pads (or, with ``padding_free``, flattens) the pre-encoded rows.
   TRL 1.16 refuses a custom collator when ``args.padding_free`` is set, because its own collator would then build the
   flattened batch; here the CGD collator builds it, so the flag is handed to the collator and hidden from
   ``SFTTrainer.__init__`` (restored right after, so ``args`` and saved configs still read ``padding_free: true``).
3. **Stopping.** The end-of-turn token the targets end with is added to the model's ``generation_config.eos_token_id``,
   so the trained student stops at the end of its turn.
"""

from __future__ import annotations

import os
import textwrap
from typing import Any

from datasets import Dataset
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging
from trl import SFTTrainer

from cgd.collator import CGDCollator, CGDEncoder, encode_dataset
from cgd.config import CGDConfig
from cgd.data import validate_triplets
from cgd.schema import get_method
from cgd.templates import PromptTemplates, render_completion

logger = logging.get_logger(__name__)


def end_of_turn_token_id(tokenizer: PreTrainedTokenizerBase, templates: PromptTemplates | None = None) -> int:
    """The id of the token every CGD target ends with: the chat template's end-of-turn token, or EOS without one."""
    completion = render_completion(tokenizer, "question", "answer", templates)
    ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError("The tokenizer renders an empty assistant turn; cannot find its end-of-turn token.")
    return ids[-1]


def prepare_cgd_dataset(
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    args: CGDConfig,
    templates: PromptTemplates | None = None,
    name: str = "train",
) -> tuple[Dataset, Any, Any]:
    """Validate and encode raw triplet rows for ``args.method``.

    Returns the encoded dataset (``input_ids``, ``labels``, ``length``) with the validation and encoding reports. Rows
    that fail validation raise :class:`cgd.data.TripletValidationError` unless ``args.drop_invalid_rows``; rows whose
    target cannot fit ``args.max_length`` are dropped by the encoder and counted in its report.
    """
    templates = templates or args.prompt_templates()
    with args.main_process_first(desc=f"CGD encoding of the {name} dataset"):
        dataset, validation = validate_triplets(dataset, args.method, drop_invalid=args.drop_invalid_rows)
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
        if tokenizer.pad_token is None:  # as SFTTrainer would do; the collator needs it now
            tokenizer.pad_token = tokenizer.eos_token

        get_method(args.method)
        templates = args.prompt_templates()
        self.validation_reports: dict[str, Any] = {}
        self.encoding_reports: dict[str, Any] = {}
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
                tokenizer,
                args.method,
                args.max_length,
                templates,
                padding_free=args.padding_free,
                pad_to_multiple_of=args.pad_to_multiple_of,
                truncation_marker=args.truncation_marker,
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
        dataset_name: str | None = None,
        tags: str | list[str] | None = None,
    ):
        """TRL's model card, tagged with the training method and with a short section on how it was trained."""
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        tags.append(self.args.method)
        super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=tags)
        if not self.is_world_process_zero():
            return
        path = os.path.join(self.args.output_dir, "README.md")
        with open(path, encoding="utf-8") as f:
            card = f.read()
        spec = get_method(self.args.method)
        counts = "; ".join(
            f"{name}: {self.validation_reports[name].summary().splitlines()[0]} {report.summary()}"
            for name, report in self.encoding_reports.items()
        )
        section = (
            "## Critique-Guided Distillation\n\n"
            f"Trained with method `{spec.name}`: {spec.description} (inputs: {', '.join(spec.inputs)}; target: "
            f"`{spec.target}`), loss on the target and its end-of-turn token only. At inference the model sees only "
            "the question, in its usual chat format; generation stops at the end-of-turn token "
            f"(id {getattr(self, 'end_of_turn_token_id', None)}).\n\n" + (f"Data ({counts})\n\n" if counts else "")
        )
        marker = "## Training procedure"
        card = card.replace(marker, section + marker, 1) if marker in card else card + "\n" + section
        with open(path, "w", encoding="utf-8") as f:
            f.write(card)
