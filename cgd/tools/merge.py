"""Merge a LoRA adapter into its base model and save a checkpoint that serves without peft.

```bash
cgd-merge --adapter_path outputs/llama-3.1-8b-cgd-lora --output_dir outputs/llama-3.1-8b-cgd-merged
vllm serve outputs/llama-3.1-8b-cgd-merged          # or transformers' pipeline, lighteval, cgd-evaluate
```

An adapter folder saved by ``cgd-train --use_peft true`` holds the adapter weights, ``adapter_config.json`` (which
names the base model), the tokenizer and the generation config that stops at the end of turn. The merged folder gets
full weights (peft's ``merge_and_unload``), that tokenizer and generation config, and a model card (built with
huggingface_hub's ``ModelCard``) that names the base model and the adapter. Every argument is a field of
:class:`MergeArguments`, set on the command line or in a YAML file (``--config``), as for ``cgd-train``.
Everything that can be checked without loading weights (the adapter folder, the base model's whereabouts offline,
the output folder) is checked first, with a one-line error.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cgd.cli import StrictParser

ADAPTER_CONFIG = "adapter_config.json"
PAPER_ID = "2505.11628"


class MergeError(ValueError):
    """An argument, adapter or base model that cannot be merged; the message says which and what to do."""


@dataclass
class MergeArguments:
    """What to merge and where to save it."""

    adapter_path: str | None = field(
        default=None,
        metadata={
            "help": "The LoRA adapter: a folder with adapter_config.json (as `cgd-train --use_peft true` saves) "
            "or a Hub adapter id. Required."
        },
    )
    output_dir: str | None = field(
        default=None,
        metadata={"help": "Where to save the merged model, tokenizer, generation config and card. Required."},
    )
    base_model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "The base model to merge into: a Hub id or a local folder. Default: the base named in the "
            "adapter's adapter_config.json (pass a local copy here when that one is not on this machine)."
        },
    )
    base_model_revision: str | None = field(
        default=None, metadata={"help": "Hub revision of the base model (branch, tag or commit)."}
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "Dtype to load, merge and save in: `auto` keeps the base checkpoint's dtype.",
            "choices": ["auto", "float32", "bfloat16", "float16"],
        },
    )
    max_shard_size: str = field(default="5GB", metadata={"help": "Largest safetensors shard of the saved weights."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Write into output_dir even when it already holds a model."}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow the base model's own modelling code from the Hub (off: safer)."}
    )


def make_parser() -> StrictParser:
    return StrictParser((MergeArguments,), prog="cgd-merge", error=MergeError)


def parse_args(argv: Sequence[str] | None = None) -> MergeArguments:
    """Parse ``--config merge.yaml`` and flags; unknown keys fail with the closest known one suggested."""
    (args,) = make_parser().parse_args_and_config(list(sys.argv[1:] if argv is None else argv))
    return args


def _is_hub_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.startswith((".", "/", "~")) or os.path.exists(name):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _offline() -> bool:
    import huggingface_hub

    return bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def _cached_on_hub(repo_id: str, filename: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename, revision=revision), str)


def resolve_adapter(adapter_path: str) -> tuple[Path, dict]:
    """The adapter's local folder and its ``adapter_config.json``, or a :class:`MergeError` that says what is wrong.

    A Hub adapter id is downloaded (or read from the Hub cache when offline) so that the rest works on a folder.
    """
    path = Path(adapter_path).expanduser()
    if not path.exists():
        if not _is_hub_id(adapter_path):
            raise MergeError(
                f"adapter_path {adapter_path} does not exist: pass a local adapter folder or a Hub adapter id"
            )
        if _offline() and not _cached_on_hub(adapter_path, ADAPTER_CONFIG, None):
            raise MergeError(
                f"adapter_path {adapter_path} is neither a local folder nor in the Hub cache, and the Hub is offline "
                "(HF_HUB_OFFLINE=1): pass a local adapter folder, or download it first (`hf download`)."
            )
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(adapter_path))
        except Exception as err:  # noqa: BLE001 - any Hub failure ends in the same advice
            raise MergeError(f"adapter {adapter_path}: could not download it from the Hub ({err})") from None
    if not path.is_dir():
        raise MergeError(f"adapter_path {adapter_path} is a file; pass the adapter folder that holds {ADAPTER_CONFIG}")
    config_file = path / ADAPTER_CONFIG
    if not config_file.is_file():
        full_model = (path / "config.json").is_file()
        what = "a full model checkpoint, which needs no merge" if full_model else "not a PEFT adapter folder"
        raise MergeError(
            f"adapter_path {adapter_path} has no {ADAPTER_CONFIG}: it is {what}. Pass the folder that "
            "`cgd-train --use_peft true` saved (adapter_config.json + adapter_model.safetensors)."
        )
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise MergeError(f"{config_file} is not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(config, dict):
        raise MergeError(f"{config_file} must hold a JSON object")
    return path, config


def resolve_base_model(args: MergeArguments, adapter_config: dict) -> str:
    """The base model to load, checked to be reachable: a local folder, or a Hub id (cached when offline)."""
    base = args.base_model_name_or_path or adapter_config.get("base_model_name_or_path")
    hint = "pass --base_model_name_or_path with a local copy of the base model"
    if not base:
        raise MergeError(f"{args.adapter_path}'s {ADAPTER_CONFIG} names no base model: {hint}")
    if os.path.isdir(os.path.expanduser(base)):
        if not os.path.isfile(os.path.join(os.path.expanduser(base), "config.json")):
            raise MergeError(f"base model {base} is a folder without config.json, not a model checkpoint: {hint}")
        return os.path.expanduser(base)
    source = "" if args.base_model_name_or_path else f" (named in {ADAPTER_CONFIG})"
    if not _is_hub_id(base):
        raise MergeError(f"base model {base}{source} does not exist on this machine: {hint}")
    if _offline() and not _cached_on_hub(base, "config.json", args.base_model_revision):
        raise MergeError(
            f"base model {base}{source} is not in the Hub cache and the Hub is offline (HF_HUB_OFFLINE=1): {hint}, "
            "or download it first (`hf download`)."
        )
    return base


def check_output_dir(args: MergeArguments, adapter_dir: Path) -> Path:
    if not args.output_dir:
        raise MergeError("output_dir is required: the folder to save the merged model in")
    out = Path(args.output_dir).expanduser()
    if out.is_file():
        raise MergeError(f"output_dir {args.output_dir} is a file; pass a folder")
    if (out / "config.json").exists() and not args.overwrite_output_dir:
        raise MergeError(f"output_dir {args.output_dir} already holds a model; pass --overwrite_output_dir true")
    if out.resolve() == adapter_dir.resolve():
        raise MergeError("output_dir must differ from adapter_path (the adapter would be overwritten)")
    return out


def _public_name(name: str) -> str:
    """What a card may say about a model: its Hub id, or a local folder's name (never a local path)."""
    return name if _is_hub_id(name) else Path(name.rstrip("/")).name


def adapter_card_metadata(adapter_dir: Path) -> dict:
    """``license``, ``datasets`` and ``language`` from the adapter's own card (training writes one), to carry over."""
    from huggingface_hub import ModelCard

    readme = adapter_dir / "README.md"
    if not readme.is_file():
        return {}
    try:
        data = ModelCard.load(readme).data
    except Exception:  # noqa: BLE001 - an unreadable card only loses the carried metadata
        return {}
    return {key: value for key in ("license", "datasets", "language") if (value := getattr(data, key, None))}


def model_card(
    base: str, adapter: str, adapter_config: dict, carried: dict | None = None, adapter_from_hub: bool = False
):
    """The merged model's card: Hub metadata (base_model, tags, paper) a Hub user can follow, and what was merged."""
    from huggingface_hub import ModelCard, ModelCardData

    from cgd.trainer import CGDTrainer

    base_id = base if _is_hub_id(base) else None
    data = ModelCardData(
        base_model=base_id,
        base_model_relation="merge" if base_id else None,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["cgd", "critique-guided-distillation", "trl", "lora", "merged", f"arxiv:{PAPER_ID}"],
        **(carried or {}),
    )
    lora = ", ".join(
        f"{key}={adapter_config[key]}" for key in ("r", "lora_alpha", "target_modules") if key in adapter_config
    )
    adapter_name = adapter if adapter_from_hub else Path(adapter.rstrip("/")).name  # never a local path
    base_ref = f"[{base_id}](https://huggingface.co/{base_id})" if base_id else f"`{_public_name(base)}` (local)"
    adapter_ref = f"[{adapter}](https://huggingface.co/{adapter})" if adapter_from_hub else f"`{adapter_name}`"
    content = f"""---
{data.to_yaml()}
---

# {adapter_name} (merged)

This checkpoint is the LoRA adapter {adapter_ref} merged into its base model {base_ref}
with peft's `merge_and_unload`, saved with the adapter's tokenizer and generation config, so it loads and serves
without peft (`vllm serve`, transformers' `pipeline`, lighteval).

- Base model: {base_ref}
- Adapter: {adapter_ref} ({adapter_config.get("peft_type", "LORA")}{": " + lora if lora else ""})
- Method: Critique-Guided Distillation ([arXiv:{PAPER_ID}](https://arxiv.org/abs/{PAPER_ID})), trained with TRL.

## Citation

```bibtex
{CGDTrainer._paper["citation"]}
```
"""
    return ModelCard(content)


def merge(args: MergeArguments) -> Path:
    """Check everything that can be checked without weights, then load, merge and save. Returns the output folder."""
    if not args.adapter_path:
        raise MergeError("adapter_path is required: the adapter folder that `cgd-train --use_peft true` saved")
    adapter_dir, adapter_config = resolve_adapter(args.adapter_path)
    base = resolve_base_model(args, adapter_config)
    out = check_output_dir(args, adapter_dir)

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    dtype = "auto" if args.dtype == "auto" else getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(
        base, revision=args.base_model_revision, dtype=dtype, trust_remote_code=args.trust_remote_code
    )
    model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()

    # The adapter folder's tokenizer and generation config are the ones training saved (EOS includes the end of
    # turn); an adapter saved without them falls back to the base model's.
    if any((adapter_dir / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        tokenizer = AutoTokenizer.from_pretrained(adapter_dir, trust_remote_code=args.trust_remote_code)
    else:
        tokenizer = AutoTokenizer.from_pretrained(
            base, revision=args.base_model_revision, trust_remote_code=args.trust_remote_code
        )
    if (adapter_dir / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(adapter_dir)

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, max_shard_size=args.max_shard_size)
    tokenizer.save_pretrained(out)
    from_hub = not Path(args.adapter_path).expanduser().exists()
    card = model_card(base, args.adapter_path, adapter_config, adapter_card_metadata(adapter_dir), from_hub)
    card.save(out / "README.md")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``cgd-merge``, ``python -m cgd.tools.merge``): bad input exits with one line."""
    try:
        args = parse_args(argv)
        out = merge(args)
    except MergeError as err:
        sys.exit(f"cgd-merge: error: {err}")
    print(f"Merged {args.adapter_path} into its base model: {out}")


if __name__ == "__main__":
    main()
