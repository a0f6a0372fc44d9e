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

import difflib
import gc
import logging
import os
import sys
from collections.abc import Sequence

import datasets
import transformers
import yaml
from transformers.trainer_utils import get_last_checkpoint
from trl import ModelConfig, TrlParser, get_peft_config, get_quantization_config

from cgd.config import CGDConfig, CGDScriptArguments

logger = logging.getLogger("cgd.train")


class RecipeError(ValueError):
    """A recipe or command line that cannot run: an unknown key, a bad value, or a missing required key."""


class CGDParser(TrlParser):
    """``TrlParser`` over the three argument dataclasses, strict about names and terse about errors.

    Abbreviated flags are refused (argparse would read ``--num_train_epoch`` as ``--num_train_epochs``), and a bad value
    raises :class:`RecipeError` with argparse's one-line message instead of printing the ~400-line usage.
    """

    def __init__(self):
        super().__init__((CGDScriptArguments, CGDConfig, ModelConfig), prog="cgd.train", allow_abbrev=False)

    def error(self, message: str):
        raise RecipeError(message)


def make_parser() -> TrlParser:
    return CGDParser()


def _unknown_keys_message(unknown: list[str], where: str, known: set[str]) -> str:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (
        f"Unknown key(s) {where}: {', '.join(parts)}. Every key must be a field of CGDScriptArguments, CGDConfig "
        "(TRL's SFTConfig + CGD fields) or TRL's ModelConfig; `python -m cgd.train --help` lists them."
    )


def check_keys(parser: TrlParser, args: Sequence[str]) -> None:
    """Raise :class:`RecipeError` naming any recipe key or command-line flag the parser does not know.

    ``TrlParser`` rejects them too, but only after building the dataclasses (so a config error can mask a typo) and
    without saying which key was meant; this check runs first and suggests the closest field.
    """
    args = list(args)
    known = {action.dest for action in parser._actions}
    if "--config" in args:
        config_path = args[args.index("--config") + 1]
        with open(config_path) as f:
            config = yaml.safe_load(f) or {}
        if not isinstance(config, dict):
            raise RecipeError(f"Recipe {config_path} must be a YAML mapping of key: value.")
        unknown = [key for key in config if key not in known and key != "env"]
        if unknown:
            raise RecipeError(_unknown_keys_message(unknown, f"in recipe {config_path}", known))
        i = args.index("--config")
        args = args[:i] + args[i + 2 :]
    _, rest = parser.parse_known_args(args)
    unknown = [arg.split("=", 1)[0].lstrip("-") for arg in rest if arg.startswith("--")]
    if rest:
        raise RecipeError(
            _unknown_keys_message(unknown, "on the command line", known) if unknown else f"Unexpected arguments {rest}"
        )


def parse_args(args: Sequence[str] | None = None) -> tuple[CGDScriptArguments, CGDConfig, ModelConfig]:
    """Parse ``--config recipe.yaml`` and command-line overrides into the three argument dataclasses."""
    args = list(sys.argv[1:] if args is None else args)
    parser = make_parser()
    check_keys(parser, args)
    return parser.parse_args_and_config(args)


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


def train(script_args: CGDScriptArguments, training_args: CGDConfig, model_args: ModelConfig) -> None:
    """Load the data and the model, train (resuming when possible), save, write the card and push."""
    from cgd.data import load_triplets
    from cgd.trainer import CGDTrainer

    _setup_logging(training_args)
    if not script_args.dataset_name:
        raise RecipeError("`dataset_name` is required: a Hub dataset id, a local folder or a triplet data file.")
    if not model_args.model_name_or_path:
        raise RecipeError("`model_name_or_path` is required: a Hub model id or a local checkpoint folder.")
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

    data_kwargs = dict(data_files=script_args.dataset_data_files, revision=script_args.dataset_revision)
    train_dataset = load_triplets(script_args.dataset_name, split=script_args.dataset_train_split, **data_kwargs)
    eval_dataset = None
    if training_args.eval_strategy != "no":
        eval_dataset = load_triplets(script_args.dataset_name, split=script_args.dataset_test_split, **data_kwargs)

    trainer = CGDTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )

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
    dataset_id = _hub_dataset_id(script_args.dataset_name)
    trainer.create_model_card(
        model_name=os.path.basename(os.path.normpath(training_args.output_dir)), dataset_name=dataset_id
    )
    logger.info(f"Model saved to {training_args.output_dir}")

    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=dataset_id)
        logger.info(f"Model pushed to https://huggingface.co/{trainer.hub_model_id}")
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
    try:
        script_args, training_args, model_args = parse_args(argv)
    except (RecipeError, ValueError) as err:
        sys.exit(f"cgd.train: error: {err}")
    from cgd.data import TripletValidationError

    try:
        train(script_args, training_args, model_args)
    except (RecipeError, TripletValidationError) as err:
        sys.exit(f"cgd.train: error: {err}")


if __name__ == "__main__":
    main()
