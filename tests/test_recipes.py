"""Every training recipe parses through the real `cgd.train` parser, and the paper recipes say what the paper did."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cgd.schema import METHODS
from cgd.train import parse_args

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
#: Folders under recipes/ that hold something other than training recipes.
NOT_TRAINING = {"accelerate_configs", "builders", "eval"}
TRAINING_RECIPES = sorted(path for path in RECIPES.glob("*/*.yaml") if path.parent.name not in NOT_TRAINING)
PAPER_MODELS = {
    "llama-3.1-8b-instruct": "meta-llama/Llama-3.1-8B-Instruct",
    "s1.1-3b": "simplescaling/s1.1-3B",
    "qwen2.5-math-7b": "Qwen/Qwen2.5-Math-7B",
}
PAPER_PROCESSES = 8
PAPER_GLOBAL_BATCH = 64


def recipe_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def parse(path: Path):
    # `use_cpu` lets the bf16 GPU recipes build their config on this CPU machine; nothing else is overridden.
    return parse_args(["--config", str(path), "--use_cpu", "true"])


def load_yaml(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def test_recipes_exist():
    names = {recipe_id(p) for p in TRAINING_RECIPES}
    for folder in PAPER_MODELS:
        assert {f"{folder}/{m}.yaml" for m in METHODS} <= names
    assert {"smollm2-135m/cgd.yaml", "smollm2-135m/cft.yaml", "smollm2-135m/sft.yaml"} <= names
    assert "llama-3.1-8b-instruct/cgd_lora.yaml" in names


@pytest.mark.parametrize("path", TRAINING_RECIPES, ids=recipe_id)
def test_recipe_parses_through_the_real_parser(path):
    script_args, training_args, model_args = parse(path)
    raw = load_yaml(path)
    # YAML values reach the dataclasses (not silently dropped).
    assert model_args.model_name_or_path == raw["model_name_or_path"]
    assert script_args.dataset_name == raw["dataset_name"]
    assert training_args.method == raw["method"]
    assert training_args.learning_rate == pytest.approx(raw["learning_rate"])
    assert training_args.output_dir == raw["output_dir"]
    assert training_args.max_length == raw["max_length"]


def test_command_line_overrides_the_recipe():
    path = RECIPES / "smollm2-135m" / "cgd.yaml"
    script_args, training_args, model_args = parse_args(
        ["--config", str(path), "--learning_rate", "3e-4", "--method", "cft", "--dataset_name", "x.jsonl"]
    )
    assert training_args.learning_rate == pytest.approx(3e-4)
    assert training_args.method == "cft"
    assert script_args.dataset_name == "x.jsonl"
    assert model_args.model_name_or_path == "HuggingFaceTB/SmolLM2-135M-Instruct"  # untouched keys keep the recipe's


@pytest.mark.parametrize(
    "path",
    [p for p in TRAINING_RECIPES if p.parent.name in PAPER_MODELS and p.stem in METHODS],
    ids=recipe_id,
)
def test_paper_recipe_settings(path):
    """LR 1e-6, global batch 64 over 8 processes (written out in the file), 1 epoch, bf16, full fine-tune."""
    _, training_args, model_args = parse(path)
    assert model_args.model_name_or_path == PAPER_MODELS[path.parent.name]
    assert training_args.method == path.stem
    assert training_args.learning_rate == pytest.approx(1e-6)
    assert training_args.num_train_epochs == 1
    assert training_args.bf16 is True
    assert model_args.use_peft is False
    assert model_args.dtype == "float32"  # fp32 master weights: 1e-6 updates vanish in bf16 weights
    per_device, accumulation = training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps
    assert per_device * accumulation * PAPER_PROCESSES == PAPER_GLOBAL_BATCH
    comment = re.search(
        r"global batch (\d+) = per_device_train_batch_size (\d+) x gradient_accumulation_steps (\d+) x (\d+) processes",
        path.read_text(),
    )
    assert comment, "the recipe must write out how the global batch is made"
    assert [int(g) for g in comment.groups()] == [PAPER_GLOBAL_BATCH, per_device, accumulation, PAPER_PROCESSES]


@pytest.mark.parametrize("folder", sorted(PAPER_MODELS))
def test_baselines_differ_from_cgd_only_in_method_and_output_dir(folder):
    cgd = load_yaml(RECIPES / folder / "cgd.yaml")
    for method in METHODS:
        other = load_yaml(RECIPES / folder / f"{method}.yaml")
        assert other["method"] == method
        differing = {k for k in cgd.keys() | other.keys() if cgd.get(k) != other.get(k)}
        assert differing <= {"method", "output_dir"}, (
            f"{folder}/{method}.yaml differs in {differing - {'method', 'output_dir'}}"
        )


def test_output_dirs_are_unique():
    dirs = [load_yaml(p)["output_dir"] for p in TRAINING_RECIPES]
    assert len(dirs) == len(set(dirs))


def test_lora_recipe_uses_peft():
    _, training_args, model_args = parse(RECIPES / "llama-3.1-8b-instruct" / "cgd_lora.yaml")
    assert model_args.use_peft is True
    assert model_args.lora_target_modules == "all-linear"


def test_cpu_recipes_run_without_a_gpu():
    for method in ("cgd", "cft", "sft"):
        _, training_args, _ = parse_args(["--config", str(RECIPES / "smollm2-135m" / f"{method}.yaml")])
        assert training_args.use_cpu is True
        assert training_args.bf16 is False
        assert training_args.method == method


@pytest.mark.parametrize("name", ["ddp", "zero2", "zero3", "fsdp", "cpu"])
def test_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    config = load_config_from_file(str(RECIPES / "accelerate_configs" / f"{name}.yaml"))
    if name == "cpu":
        assert config.use_cpu is True
        assert config.num_processes == 1
        assert config.distributed_type == DistributedType.NO
        return
    assert config.num_processes == 8
    assert config.mixed_precision == "bf16"
    expected = {
        "ddp": DistributedType.MULTI_GPU,
        "zero2": DistributedType.DEEPSPEED,
        "zero3": DistributedType.DEEPSPEED,
        "fsdp": DistributedType.FSDP,
    }[name]
    assert config.distributed_type == expected
    if name.startswith("zero"):
        assert config.deepspeed_config["zero_stage"] == int(name[-1])
