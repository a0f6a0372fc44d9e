"""Configuration for CGD training: :class:`CGDConfig` (an ``SFTConfig``) and the script's dataset arguments.

Every field is a recipe key and a command-line flag of ``cgd.train`` (parsed by TRL's ``TrlParser``).
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from typing import Any

from trl import DatasetMixtureConfig, SFTConfig

from cgd.ablations import CRITIQUE_ABLATIONS, check_critique_ablation
from cgd.collator import DEFAULT_TRUNCATION_MARKER
from cgd.schema import METHODS, get_method
from cgd.templates import PromptTemplates

#: ``SFTConfig`` options that CGD training cannot honour: field -> (the only value accepted, why). They are refused when
#: the config is built, before any model loads, instead of being accepted and ignored.
NOT_APPLICABLE: dict[str, tuple[Any, str]] = {
    "dataset_text_field": (
        "text",
        "CGD rows are triplets that the trainer renders with its prompt templates; there is no text column to read",
    ),
    "completion_only_loss": (
        None,
        "CGD always puts the loss on the target and its end-of-turn token only (labels are -100 on the prompt)",
    ),
    "assistant_only_loss": (
        False,
        "CGD always puts the loss on the target (the one assistant turn) and its end-of-turn token only",
    ),
    "truncation_mode": (
        "keep_start",
        "CGD never cuts the target: it shortens the draft, then the critique (`truncation_marker`), and drops and "
        "counts rows whose target alone does not fit `max_length`",
    ),
    "packing": (
        False,
        "the CGD collator builds each row from its triplet and never packs across rows; use `padding_free: true` to "
        "drop padding instead",
    ),
    "packing_strategy": ("bfd", "packing is not supported (see `packing`)"),
    "eval_packing": (None, "packing is not supported (see `packing`)"),
    "shuffle_dataset": (
        False,
        "CGD prepares the dataset itself and TRL's preparation (where this applies) is skipped; the trainer's sampler "
        "already shuffles every epoch from `seed`",
    ),
}

#: ``CGDConfig`` field -> ``PromptTemplates`` field, for the prompt wording a recipe may override.
TEMPLATE_FIELDS: dict[str, str] = {
    "cgd_template": "cgd",
    "cgd_no_critique_template": "cgd_no_critique",
    "cft_template": "cft",
    "sft_template": "sft",
    "distilled_sft_template": "distilled_sft",
    "system_prompt": "system_prompt",
    "plain_prompt_template": "plain_prompt",
}


@dataclass
class CGDScriptArguments(DatasetMixtureConfig):
    r"""
    Which triplet data ``cgd.train`` loads: one dataset (``dataset_name``) or a mixture (``datasets``, TRL's
    [`~trl.DatasetMixtureConfig`]), and what it evaluates on.

    Parameters:
        dataset_name (`str`, *optional*):
            A Hub dataset id (`org/name`), a local folder in Hub layout (parquet/JSONL shards and a card), or a single
            `.jsonl`/`.json`/`.parquet` file of triplet rows.
        dataset_config (`str`, *optional*):
            Configuration of `dataset_name` to load (`name` of `datasets.load_dataset`): a builder card offers
            `default` (every column) and one view per method (`cgd`, `cft`, `sft`, ...).
        dataset_revision (`str`, *optional*):
            Revision (branch, tag or commit) of a Hub dataset.
        dataset_data_files (`list[str]`, *optional*):
            Data files to load from `dataset_name` (glob patterns relative to it), e.g. one shard.
        dataset_train_split (`str`, *optional*, defaults to `"train"`):
            Split to train on.
        dataset_test_split (`str`, *optional*, defaults to `"test"`):
            Split to evaluate on, read only when `eval_strategy` is not `"no"` and `test_split_size` is unset.
        datasets (`list[DatasetConfig]`, *optional*):
            A mixture, as in TRL's scripts: a YAML list of `{path, name, data_files, split, columns, fraction}`, each
            `path` a Hub id, a local folder or a triplet file. Replaces `dataset_name`.
        test_split_size (`float`, *optional*):
            Hold this fraction (or, when >= 1, this number) of the training rows out as the evaluation set, with
            `seed`; the builder writes only a `train` split.
        streaming, dataset_streaming (`bool`, *optional*, defaults to `False`):
            Not supported: CGD validates every row and encodes the data once, counting what it drops, before
            training starts; a stream cannot be counted up front.
    """

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A Hub dataset id (`org/name`), a local folder in Hub layout, or a single .jsonl/.json/.parquet "
            "file of triplet rows."
        },
    )
    dataset_config: str | None = field(
        default=None,
        metadata={
            "help": "Configuration of `dataset_name` to load: a builder card offers `default` and one view per method "
            "(`cgd`, `cft`, `sft`, ...)."
        },
    )
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Revision (branch, tag or commit) of a Hub dataset."}
    )
    dataset_data_files: list[str] | None = field(
        default=None,
        metadata={"help": "Data files to load from `dataset_name` (glob patterns relative to it), e.g. one shard."},
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(
        default="test",
        metadata={
            "help": "Split to evaluate on, read only when `eval_strategy` is not 'no' and `test_split_size` is unset."
        },
    )
    dataset_streaming: bool = field(
        default=False,
        metadata={"help": "Not supported: CGD counts what it keeps and drops before training, which a stream cannot."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.streaming or self.dataset_streaming:
            raise ValueError(
                "Streaming is not supported by cgd.train: every row is validated and encoded once, and what is dropped "
                "or truncated is counted, before training starts; a stream cannot be counted up front. Load the data "
                "without streaming (datasets keeps it on disk, memory-mapped), or train on some shards with "
                "`dataset_data_files`."
            )
        if self.datasets and self.dataset_name:
            raise ValueError("Set either `dataset_name` or `datasets` (a mixture), not both.")
        if self.test_split_size is not None and not self.test_split_size > 0:
            raise ValueError(
                f"`test_split_size` must be a fraction in (0, 1) or a number of rows >= 1, got {self.test_split_size}."
            )
        for entry in self.datasets:
            if not entry.path:
                raise ValueError("Every entry of `datasets` needs a `path`.")


@dataclass
class CGDConfig(SFTConfig):
    r"""
    Configuration class for the [`~cgd.trainer.CGDTrainer`].

    Adds to [`~trl.SFTConfig`] only what Critique-Guided Distillation needs: which method's view of the triplets to
    train on, how to treat invalid rows, the prompt wording and the truncation marker. Everything else (optimizer,
    precision, `max_length`, `padding_free`, logging, saving, `push_to_hub`, ...) is TRL's and transformers' own.

    Parameters:
        > Parameters that control the CGD data

        method (`str`, *optional*, defaults to `"cgd"`):
            Training method, i.e. which columns the student sees and which one it learns: `"cgd"` ((x, y', c) ->
            refined answer), `"cgd_no_critique"` ((x, y') -> refined answer), `"cft"` ((x, y') -> critique), `"sft"`
            (x -> reference answer) or `"distilled_sft"` (x -> teacher's direct answer). All methods train through the
            same collator, so comparisons are like for like.
        drop_invalid_rows (`bool`, *optional*, defaults to `False`):
            Whether to drop rows that fail validation (missing or empty input/target fields) instead of failing. The
            number of dropped rows and the reasons are logged.
        truncation_marker (`str`, *optional*, defaults to `"\n[... truncated ...]\n"`):
            Text put where a too-long initial answer or critique was cut (head and tail are kept). Targets are never
            cut; a row whose target alone does not fit `max_length` is dropped and counted.
        critique_ablation (`str`, *optional*, defaults to `"none"`):
            The paper's critique-specificity ablation, for `method="cgd"`: `"irrelevant"` trains on another row's
            critique (a seeded derangement, `critique_ablation_seed`), `"generic"` on one fixed text
            ([`cgd.ablations.GENERIC_CRITIQUE`]). Same collator, same rendering.

        > Parameters that control the prompt wording (all optional; unset keeps the defaults of
        > [`cgd.templates.PromptTemplates`])

        cgd_template (`str`, *optional*):
            User-turn template of `method="cgd"`, a `str.format` string over `{question}`, `{initial_response}` and
            `{critique}`.
        cgd_no_critique_template (`str`, *optional*):
            User-turn template of `method="cgd_no_critique"`, over `{question}` and `{initial_response}`.
        cft_template (`str`, *optional*):
            User-turn template of `method="cft"`, over `{question}` and `{initial_response}`.
        sft_template (`str`, *optional*):
            User-turn template of `method="sft"`, over `{question}`.
        distilled_sft_template (`str`, *optional*):
            User-turn template of `method="distilled_sft"`, over `{question}`.
        system_prompt (`str`, *optional*):
            System message put before the user turn (chat templates only).
        plain_prompt_template (`str`, *optional*):
            Layout for tokenizers without a chat template (base models), over `{prompt}` (the rendered user turn).

        > Parameters that control the model card and the Hub push

        model_license (`str`, *optional*):
            License of the trained model, written into its card's metadata (usually the base model's, e.g.
            `"apache-2.0"` or `"llama3.1"`). Unset leaves the card without one.
        hub_model_revision (`str`, *optional*):
            Branch of `hub_model_id` that `push_to_hub` uploads to (created when missing), as in open-r1; sets
            transformers' `hub_revision`.

    > [!NOTE]
    > Defaults that differ from [`~trl.SFTConfig`]:
    > - `remove_unused_columns`: `False`, so the precomputed `length` column reaches the length-grouped sampler
    >   (`train_sampling_strategy="group_by_length"`).
    > - `dataset_kwargs`: `skip_prepare_dataset` is always `True`; the [`~cgd.trainer.CGDTrainer`] validates and
    >   tokenizes the triplets itself.
    > - `padding_free=True` is honoured by the CGD collator, not by TRL's (which refuses custom collators in that
    >   mode); see `docs/training.md`.
    > - Options that do not apply to CGD training are refused (see `NOT_APPLICABLE`): `packing`,
    >   `completion_only_loss`, `assistant_only_loss`, `dataset_text_field`, `truncation_mode`, ...
    > - `chat_template_path` must be a `.jinja`/`.j2` file; it is applied before the triplets are encoded.
    """

    # Parameters whose default values are overridden from SFTConfig
    remove_unused_columns: bool = field(
        default=False,
        metadata={
            "help": "Whether to drop dataset columns the model's forward does not take. Defaults to False so that "
            "the precomputed `length` column reaches the length-grouped sampler."
        },
    )

    # Parameters that control the CGD data
    method: str = field(
        default="cgd",
        metadata={
            "help": "Training method: 'cgd' ((x, y', c) -> refined answer), 'cgd_no_critique' ((x, y') -> refined "
            "answer), 'cft' ((x, y') -> critique), 'sft' (x -> reference answer) or 'distilled_sft' (x -> teacher's "
            "direct answer).",
            "choices": list(METHODS),
        },
    )
    drop_invalid_rows: bool = field(
        default=False,
        metadata={
            "help": "Drop rows that fail validation (missing or empty input/target fields) instead of failing; the "
            "number dropped and why is logged."
        },
    )
    truncation_marker: str = field(
        default=DEFAULT_TRUNCATION_MARKER,
        metadata={"help": "Text put where a too-long initial answer or critique was cut (head and tail are kept)."},
    )
    critique_ablation: str = field(
        default="none",
        metadata={
            "help": "Critique-specificity ablation (method 'cgd'): 'none' (the row's own critique), 'irrelevant' "
            "(another row's, by a seeded derangement) or 'generic' (one fixed text); see cgd.ablations.",
            "choices": list(CRITIQUE_ABLATIONS),
        },
    )
    critique_ablation_seed: int = field(default=0, metadata={"help": "Seed of the 'irrelevant' derangement."})

    # Parameters that control the prompt wording
    cgd_template: str | None = field(
        default=None,
        metadata={"help": "User-turn template of method 'cgd', over {question}, {initial_response} and {critique}."},
    )
    cgd_no_critique_template: str | None = field(
        default=None,
        metadata={"help": "User-turn template of method 'cgd_no_critique', over {question} and {initial_response}."},
    )
    cft_template: str | None = field(
        default=None, metadata={"help": "User-turn template of method 'cft', over {question} and {initial_response}."}
    )
    sft_template: str | None = field(
        default=None, metadata={"help": "User-turn template of method 'sft', over {question}."}
    )
    distilled_sft_template: str | None = field(
        default=None, metadata={"help": "User-turn template of method 'distilled_sft', over {question}."}
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "System message put before the user turn (chat templates only)."}
    )
    plain_prompt_template: str | None = field(
        default=None,
        metadata={
            "help": "Layout for tokenizers without a chat template (base models), over {prompt} (the rendered user "
            "turn)."
        },
    )

    # Parameters that control the model card and the Hub push
    model_license: str | None = field(
        default=None,
        metadata={
            "help": "License of the trained model for its card's metadata (usually the base model's, e.g. "
            "'apache-2.0' or 'llama3.1')."
        },
    )
    hub_model_revision: str | None = field(
        default=None,
        metadata={
            "help": "Branch of `hub_model_id` that `push_to_hub` uploads to (created when missing), as in open-r1; "
            "sets transformers' `hub_revision`."
        },
    )

    def __post_init__(self):
        self._refuse_what_does_not_apply()  # before SFTConfig's own checks, so the reason given is CGD's
        super().__post_init__()
        get_method(self.method)  # a clear error listing the valid methods
        check_critique_ablation(self.method, self.critique_ablation)
        # The trainer validates and tokenizes the triplets itself; TRL's own preparation must not run on them.
        self.dataset_kwargs = {**(self.dataset_kwargs or {}), "skip_prepare_dataset": True}
        self._check_template_placeholders()
        self._check_chat_template_path()
        if self.hub_model_revision is not None:
            if self.hub_revision not in (None, self.hub_model_revision):
                raise ValueError(
                    f"`hub_model_revision` ({self.hub_model_revision!r}) and `hub_revision` ({self.hub_revision!r}) "
                    "disagree; set only one."
                )
            self.hub_revision = self.hub_model_revision

    def _refuse_what_does_not_apply(self) -> None:
        for name, (accepted, why) in NOT_APPLICABLE.items():
            value = getattr(self, name)
            if value != accepted:
                raise ValueError(
                    f"`{name}: {value}` does not apply to CGD training: {why}. Remove it from the recipe."
                )

    def _check_chat_template_path(self) -> None:
        # TRL applies `chat_template_path` inside SFTTrainer.__init__, after CGDTrainer has encoded the rows with the
        # tokenizer's own template: the model would train in one format and be saved with another. CGDTrainer
        # applies a template file itself before encoding. A tokenizer path would also make TRL add tokens and resize
        # the model (trl.clone_chat_template), which cannot happen before the model exists, so it is refused.
        path = self.chat_template_path
        if path is None:
            return
        if not path.endswith((".jinja", ".j2")):
            raise ValueError(
                f"`chat_template_path: {path}` must be a .jinja/.j2 template file for CGD training (its special tokens "
                "already in the tokenizer). To take a template from another tokenizer, run trl.clone_chat_template "
                "on the model and tokenizer, save them, and train that checkpoint."
            )
        if not os.path.isfile(path):
            raise ValueError(f"`chat_template_path`: no such file {path!r}.")

    def prompt_templates(self) -> PromptTemplates:
        """The :class:`~cgd.templates.PromptTemplates` with this config's overrides applied."""
        return PromptTemplates.from_overrides(
            {target: getattr(self, name) for name, target in TEMPLATE_FIELDS.items()}
        )

    def _check_template_placeholders(self) -> None:
        # Fail at parse time, not after the model is loaded, when a template names a column its method does not show.
        allowed = {name: set(METHODS[target].inputs) for name, target in TEMPLATE_FIELDS.items() if target in METHODS}
        allowed["plain_prompt_template"] = {"prompt"}
        for name, fields_allowed in allowed.items():
            template = getattr(self, name)
            if template is None:
                continue
            try:
                used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            except ValueError as err:
                raise ValueError(f"`{name}` is not a valid str.format template: {err}") from None
            unknown = sorted(used - fields_allowed)
            if unknown:
                raise ValueError(
                    f"`{name}` uses placeholder(s) {unknown}; it may only use {sorted(fields_allowed)} "
                    "(write literal braces as '{{' and '}}')."
                )
