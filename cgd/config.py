"""Configuration for CGD training: :class:`CGDConfig` (an ``SFTConfig``) and the script's dataset arguments.

Every field is a recipe key and a command-line flag of ``cgd.train`` (parsed by TRL's ``TrlParser``).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

from trl import SFTConfig

from cgd.collator import DEFAULT_TRUNCATION_MARKER
from cgd.schema import METHODS, get_method
from cgd.templates import PromptTemplates

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
class CGDScriptArguments:
    r"""
    Which triplet dataset ``cgd.train`` loads (through [`cgd.data.load_triplets`]).

    Parameters:
        dataset_name (`str`):
            A Hub dataset id (`org/name`), a local folder in Hub layout (parquet/JSONL shards and a card), or a single
            `.jsonl`/`.json`/`.parquet` file of triplet rows.
        dataset_revision (`str`, *optional*):
            Revision (branch, tag or commit) of a Hub dataset.
        dataset_data_files (`list[str]`, *optional*):
            Data files to load from `dataset_name` (glob patterns relative to it), e.g. one shard.
        dataset_train_split (`str`, *optional*, defaults to `"train"`):
            Split to train on.
        dataset_test_split (`str`, *optional*, defaults to `"test"`):
            Split to evaluate on, read only when `eval_strategy` is not `"no"`.
    """

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A Hub dataset id (`org/name`), a local folder in Hub layout, or a single .jsonl/.json/.parquet "
            "file of triplet rows."
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
        default="test", metadata={"help": "Split to evaluate on, read only when `eval_strategy` is not 'no'."}
    )


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

    > [!NOTE]
    > Defaults that differ from [`~trl.SFTConfig`]:
    > - `remove_unused_columns`: `False`, so the precomputed `length` column reaches the length-grouped sampler
    >   (`train_sampling_strategy="group_by_length"`).
    > - `dataset_kwargs`: `skip_prepare_dataset` is always `True`; the [`~cgd.trainer.CGDTrainer`] validates and
    >   tokenizes the triplets itself.
    > - `padding_free=True` is honoured by the CGD collator, not by TRL's (which refuses custom collators in that
    >   mode); see `docs/training.md`. `packing` is not supported.
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

    def __post_init__(self):
        super().__post_init__()
        get_method(self.method)  # a clear error listing the valid methods
        if self.packing:
            raise ValueError(
                "`packing=True` is not supported by CGDTrainer: the CGD collator builds each row from its triplet "
                "and never packs across rows. Use `padding_free: true` to drop padding instead."
            )
        # The trainer validates and tokenizes the triplets itself; TRL's own preparation must not run on them.
        self.dataset_kwargs = {**(self.dataset_kwargs or {}), "skip_prepare_dataset": True}
        self._check_template_placeholders()

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
