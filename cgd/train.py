"""Train a student on CGD triplets with a recipe.

```bash
accelerate launch --config_file recipes/accelerate_configs/zero3.yaml -m cgd.train \
    --config recipes/llama-3.1-8b-instruct/cgd.yaml [--any_recipe_key value ...]
python -m cgd.train --config recipes/smollm2-135m/cgd.yaml   # one process, no launcher
```

The recipe YAML sets the defaults of every field of :class:`~cgd.config.CGDScriptArguments`,
:class:`~cgd.config.CGDConfig` and TRL's ``ModelConfig``; command-line flags override it; a key that is none of
those fails before anything is loaded. Training resumes from the last checkpoint in ``output_dir`` when there is one
(or from ``--resume_from_checkpoint PATH``). The final model is saved with its tokenizer (chat template unchanged), a
generation config that stops at the end of turn, and a model card; ``push_to_hub: true`` uploads it.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Sequence

import datasets
import huggingface_hub
import transformers
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers.trainer_utils import get_last_checkpoint
from trl import DatasetMixtureConfig, ModelConfig, get_peft_config, get_quantization_config

from cgd.cli import StrictParser
from cgd.config import CGDConfig, CGDScriptArguments

logger = logging.getLogger("cgd.train")

#: The local copy of the CPU recipes' model that `make model` writes (the demo's embedded SmolLM2-135M-Instruct).
EMBEDDED_MODEL_PATH = "cache/models/SmolLM2-135M-Instruct"


class RecipeError(ValueError):
    """A recipe or command line that cannot run: an unknown key, a bad value, or a missing required key."""


def make_parser() -> StrictParser:
    """The shared strict ``TrlParser`` over the three argument dataclasses; a bad key or value is a RecipeError."""
    return StrictParser((CGDScriptArguments, CGDConfig, ModelConfig), prog="python -m cgd.train", error=RecipeError)


def parse_args(args: Sequence[str] | None = None) -> tuple[CGDScriptArguments, CGDConfig, ModelConfig]:
    """Parse ``--config recipe.yaml`` and command-line overrides into the three argument dataclasses.

    Unknown keys (recipe or command line, with the closest field suggested) and abbreviated flags fail before any
    dataclass is built, so a config error cannot mask a typo.
    """
    return make_parser().parse_args_and_config(list(sys.argv[1:] if args is None else args))


def _setup_logging(training_args: CGDConfig) -> None:
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def _hub_dataset_id(name: str | None) -> str | None:
    """``name`` when it is a Hub dataset id (for the model card's dataset link), else ``None``."""
    if not name or os.path.exists(os.path.expanduser(name)) or name.count("/") != 1 or name.startswith((".", "/")):
        return None
    return name


def _hub_offline() -> bool:
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def check_model_source(model_args: ModelConfig) -> None:
    """Fail at once, in one line, when the model cannot load: a missing folder, or a Hub id the Hub cannot serve.

    Without this, transformers reports a missing folder as "Repo id must be in the form ..." and an offline Hub id
    after its retries, each with a long traceback, and only once the data is loaded.
    """
    name = model_args.model_name_or_path
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        if not any(os.path.isfile(os.path.join(expanded, f)) for f in ("config.json", "adapter_config.json")):
            raise RecipeError(
                f"`model_name_or_path`: {name!r} is a folder without config.json, not a model checkpoint."
            )
        return
    local_hint = (
        f"pass a local checkpoint folder instead, e.g. --model_name_or_path {EMBEDDED_MODEL_PATH} (`make model`)"
    )
    try:
        validate_repo_id(name)
        is_repo_id = not name.startswith((".", "~")) and name.count("/") <= 1
    except HFValidationError:
        is_repo_id = False
    if not is_repo_id or os.path.exists(expanded):
        raise RecipeError(f"`model_name_or_path`: no such model folder {name!r}; {local_hint}.")
    revision = model_args.model_revision or "main"
    if isinstance(huggingface_hub.try_to_load_from_cache(name, "config.json", revision=revision), str):
        return  # a cached copy: loads offline too
    if _hub_offline():
        raise RecipeError(
            f"`model_name_or_path`: {name!r} is a Hub id, the Hub is offline (HF_HUB_OFFLINE) and it is not in the "
            f"local cache: {local_hint}."
        )
    try:
        huggingface_hub.HfApi().model_info(name, revision=model_args.model_revision, timeout=10)
    except huggingface_hub.errors.GatedRepoError:
        raise RecipeError(
            f"`model_name_or_path`: {name!r} is gated: accept its terms on the Hub and log in."
        ) from None
    except huggingface_hub.errors.RepositoryNotFoundError:
        raise RecipeError(
            f"`model_name_or_path`: {name!r} is neither a local folder nor a model on the Hub (private? log in)."
        ) from None
    except huggingface_hub.errors.RevisionNotFoundError:
        raise RecipeError(f"`model_revision`: {name!r} has no revision {model_args.model_revision!r}.") from None
    except Exception as err:  # no network: httpx/requests connection errors
        raise RecipeError(
            f"`model_name_or_path`: cannot reach the Hub for {name!r} ({type(err).__name__}); {local_hint}."
        ) from None


def check_push_target(training_args: CGDConfig) -> None:
    """With ``push_to_hub``, check the Hub target before any work: online, a token, a valid repo id, and the branch.

    transformers only creates the repository when the trainer is built (after the model loads) and pushes at the end,
    so an offline run or a missing token would otherwise fail after training, in a long httpx traceback.
    """
    if not training_args.push_to_hub:
        return
    repo_id = training_args.hub_model_id or os.path.basename(os.path.abspath(training_args.output_dir))
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise RecipeError(f"`hub_model_id`: {repo_id!r} is not a valid Hub repository id ({err}).") from None
    if _hub_offline():
        raise RecipeError(
            "`push_to_hub: true` needs the Hub, but it is offline (HF_HUB_OFFLINE is set): unset it, or drop "
            "--push_to_hub and upload the output folder later (`hf upload`)."
        )
    token = training_args.hub_token or huggingface_hub.get_token()
    if not token:
        raise RecipeError(
            "`push_to_hub: true` needs a Hub token with write access: run `hf auth login`, set HF_TOKEN, or pass "
            "--hub_token."
        )
    api = huggingface_hub.HfApi(token=token)
    try:
        api.whoami()
        if training_args.hub_revision:  # transformers uploads to this branch but never creates it (open-r1 does)
            repo = api.create_repo(repo_id, private=training_args.hub_private_repo, exist_ok=True)
            api.create_branch(repo.repo_id, branch=training_args.hub_revision, exist_ok=True)
    except Exception as err:
        raise RecipeError(
            f"`push_to_hub`: the Hub target {repo_id!r} is not usable ({type(err).__name__}: {str(err)[:200]})."
        ) from None


def load_datasets(script_args: CGDScriptArguments, training_args: CGDConfig):
    """The train and eval triplet datasets, and the Hub ids of the data (for the model card).

    One dataset (``dataset_name``, ``dataset_config``, splits) or a mixture (``datasets``, through TRL's
    ``get_dataset``); ``test_split_size`` holds rows of the training data out for evaluation.
    """
    from cgd.data import DataSourceError, load_triplets, resolve_source

    need_eval = training_args.eval_strategy != "no"
    if script_args.datasets:
        from dataclasses import replace

        from trl import get_dataset

        entries = []
        for entry in script_args.datasets:
            path, files = resolve_source(entry.path, entry.data_files)
            entries.append(replace(entry, path=path, data_files=files))
        try:  # TRL's own mixing (fractions, columns); its test split has no seed, so the split is done below
            train_dataset = get_dataset(DatasetMixtureConfig(datasets=entries))["train"]
        except ValueError as err:
            raise DataSourceError(f"`datasets`: {err}") from None
        hub_ids = [e.path for e in script_args.datasets if _hub_dataset_id(e.path)]
    else:
        kwargs = dict(
            data_files=script_args.dataset_data_files,
            revision=script_args.dataset_revision,
            name=script_args.dataset_config,
        )
        train_dataset = load_triplets(script_args.dataset_name, split=script_args.dataset_train_split, **kwargs)
        hub_ids = [script_args.dataset_name] if _hub_dataset_id(script_args.dataset_name) else []

    eval_dataset = None
    if script_args.test_split_size is not None:
        size = script_args.test_split_size
        size = int(size) if size >= 1 else size
        # Seeded, so every process holds out the same rows (TRL's get_dataset splits without a seed).
        split = train_dataset.train_test_split(test_size=size, seed=training_args.seed)
        train_dataset, eval_dataset = split["train"], split["test"]
        logger.info(f"Held out {len(eval_dataset)} of {len(train_dataset) + len(eval_dataset)} rows for evaluation.")
        if not need_eval:
            eval_dataset = None
    elif need_eval:
        if script_args.datasets:
            raise RecipeError(
                f"`eval_strategy: {training_args.eval_strategy}` with `datasets` needs `test_split_size` (e.g. 0.05) "
                "to hold evaluation rows out of the mixture."
            )
        eval_dataset = load_triplets(script_args.dataset_name, split=script_args.dataset_test_split, **kwargs)
    return train_dataset, eval_dataset, hub_ids


def train(
    script_args: CGDScriptArguments,
    training_args: CGDConfig,
    model_args: ModelConfig,
    recipe_name: str | None = None,
) -> None:
    """Load the data and the model, train (resuming when possible), save, write the card and push.

    ``recipe_name`` is how the model card names the recipe (a path relative to the working directory, never an
    absolute one).
    """
    from cgd.trainer import CGDTrainer

    _setup_logging(training_args)
    if not script_args.dataset_name and not script_args.datasets:
        raise RecipeError(
            "`dataset_name` (a Hub dataset id, a local folder or a triplet data file) or `datasets` (a mixture) is "
            "required."
        )
    if not model_args.model_name_or_path:
        raise RecipeError("`model_name_or_path` is required: a Hub model id or a local checkpoint folder.")
    check_model_source(model_args)
    check_push_target(training_args)
    logger.info(f"Model {model_args}")
    logger.info(f"Script {script_args}")
    logger.info(f"Training/evaluation {training_args}")

    last_checkpoint = None
    if os.path.isdir(training_args.output_dir):
        last_checkpoint = get_last_checkpoint(training_args.output_dir)
    checkpoint = training_args.resume_from_checkpoint or last_checkpoint
    if checkpoint is not None:
        logger.warning(f"Resuming training from {checkpoint}.")

    if model_args.attn_implementation == "cgd_varlen":  # cgd's mask-free varlen attention (docs/performance.md)
        from cgd.attention import register_varlen_attention

        register_varlen_attention()

    # Model: loaded by the trainer from its id/path with these kwargs (as in TRL's sft script).
    model_init_kwargs = dict(
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        dtype=model_args.dtype,
    )
    model_init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = model_init_kwargs
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )

    train_dataset, eval_dataset, dataset_ids = load_datasets(script_args, training_args)

    trainer = CGDTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )
    trainer.card_datasets = dataset_ids
    trainer.recipe = recipe_name

    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = train_result.metrics
    metrics["train_samples"] = len(trainer.train_dataset)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    if eval_dataset is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)

    # Weights, tokenizer (chat template untouched) and generation config (eos includes the end-of-turn token).
    trainer.save_model(training_args.output_dir)
    if model_args.use_peft and trainer.is_world_process_zero():  # an adapter save carries no generation config
        trainer.model.generation_config.save_pretrained(training_args.output_dir)
    trainer.create_model_card(model_name=os.path.basename(os.path.normpath(training_args.output_dir)))
    logger.info(f"Model saved to {training_args.output_dir}")

    if training_args.push_to_hub:
        trainer.push_to_hub()  # to `hub_revision` (`hub_model_revision`) when set
        revision = f" (revision {training_args.hub_revision})" if training_args.hub_revision else ""
        logger.info(f"Model pushed to https://huggingface.co/{trainer.hub_model_id}{revision}")
    _end_training(trainer)


def _end_training(trainer) -> None:
    """Finish the trackers and destroy the process group, the DDP wrapper first.

    ``Trainer.end()`` destroys the group while the DDP wrapper's gradient reducer still holds it, so the group is then
    torn down inside the reducer's destructor, with the GIL held; with gloo (CPU) that can deadlock against the group's
    worker threads at exit (pytorch/pytorch#56297). Freeing the wrapper while the group is registered avoids it.
    """
    accelerator = trainer.accelerator
    accelerator.wait_for_everyone()
    trainer.model_wrapped = trainer.model
    accelerator.free_memory()
    gc.collect()
    accelerator.end_training()


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``cgd-train``, ``python -m cgd.train``): recipe errors exit with a one-line message."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        script_args, training_args, model_args = parse_args(argv)
    except (RecipeError, ValueError) as err:
        sys.exit(f"cgd.train: error: {err}")
    from cgd.data import DataSourceError, TripletValidationError

    try:
        train(script_args, training_args, model_args, recipe_name=_recipe_name(argv))
    except (RecipeError, TripletValidationError, DataSourceError, FileNotFoundError) as err:
        sys.exit(f"cgd.train: error: {err}")


def _recipe_name(argv: Sequence[str]) -> str | None:
    """The ``--config`` path as the model card shows it: relative to the working directory, else its file name."""
    if "--config" not in argv:
        return None
    path = argv[list(argv).index("--config") + 1]
    relative = os.path.relpath(os.path.abspath(path))
    return relative if not relative.startswith("..") else os.path.basename(path)


if __name__ == "__main__":
    main()
