"""The training path end to end: `python -m cgd.train` with a recipe, resume, generation, DDP on CPU, LoRA, errors.

Everything runs offline on a tiny random Llama (cgd.testing). The subprocess runs use the real SmolLM2 CPU recipe
with the model, data and a few training knobs overridden on the command line, as the demo does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cgd.config import CGDConfig
from cgd.data import TripletValidationError
from cgd.testing import make_tiny_model, make_tiny_tokenizer, make_triplet_rows, offline_subprocess_env
from cgd.train import _hub_dataset_id, main, parse_args

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPE = REPO_ROOT / "recipes" / "smollm2-135m" / "cgd.yaml"
END_OF_TURN = "<|im_end|>"
TARGET = "The answer is \\boxed{7}."


def flags(**kwargs) -> list[str]:
    """``--key value`` command-line flags."""
    return [item for key, value in kwargs.items() for item in (f"--{key}", str(value))]


# Small enough to take seconds per run on a loaded 2-core box, large enough to learn to stop.
FAST = flags(
    per_device_train_batch_size=8,
    gradient_accumulation_steps=1,
    learning_rate=1e-2,
    max_length=256,
    logging_steps=4,
    disable_tqdm="true",
)


def subprocess_env() -> dict[str, str]:
    return offline_subprocess_env(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    )


def run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    return proc


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "cgd.train", "--config", str(RECIPE), *args]


def logged_losses(output: str) -> list[float]:
    return [float(x) for x in re.findall(r"'loss': '([0-9.e+-]+)'", output)]


@pytest.fixture(scope="module")
def eot_checkpoint(tmp_path_factory) -> Path:
    """A tiny checkpoint whose EOS (<|endoftext|>) is not its chat end-of-turn token (<|im_end|>), like base models
    (Qwen2.5-Math's EOS is <|endoftext|>): the trained student only stops if training adds <|im_end|> to its
    generation config."""
    path = tmp_path_factory.mktemp("tiny-eot")
    tokenizer = make_tiny_tokenizer()
    tokenizer.eos_token = "<|endoftext|>"
    model = make_tiny_model(tokenizer)
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def triplets_jsonl(tmp_path_factory) -> Path:
    """32 triplet rows as JSONL; a short shared refined answer so a tiny model learns it (and its end) in seconds."""
    path = tmp_path_factory.mktemp("triplets") / "train.jsonl"
    rows = make_triplet_rows(32)
    for row in rows:
        row["refined_response"] = TARGET
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, eot_checkpoint, triplets_jsonl):
    """16 steps of CGD through `python -m cgd.train`, checkpointing every 8."""
    output_dir = tmp_path_factory.mktemp("runs") / "cgd"
    proc = run(
        train_cmd(
            *flags(model_name_or_path=eot_checkpoint, dataset_name=triplets_jsonl, output_dir=output_dir),
            *flags(max_steps=16, save_strategy="steps", save_steps=8, save_total_limit=3),
            *FAST,
        )
    )
    return output_dir, proc


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory, first_run, eot_checkpoint, triplets_jsonl):
    """The first run's folder, copied and trained on to 32 steps: it must resume from checkpoint-16."""
    first_dir, _ = first_run
    output_dir = tmp_path_factory.mktemp("runs") / "cgd-resumed"
    shutil.copytree(first_dir, output_dir)
    proc = run(
        train_cmd(
            *flags(model_name_or_path=eot_checkpoint, dataset_name=triplets_jsonl, output_dir=output_dir),
            *flags(max_steps=32, save_strategy="steps", save_steps=8, save_total_limit=3),
            *FAST,
        )
    )
    return output_dir, proc


def test_training_run_lowers_the_loss_and_saves_checkpoints(first_run):
    output_dir, proc = first_run
    assert (output_dir / "checkpoint-8").is_dir() and (output_dir / "checkpoint-16").is_dir()
    state = json.loads((output_dir / "checkpoint-16" / "trainer_state.json").read_text())
    assert state["global_step"] == 16
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 4  # logged every 4 steps
    assert losses[-1] < 0.7 * losses[0], losses
    assert logged_losses(proc.stdout) == pytest.approx(losses, rel=1e-3)


def test_saved_model_keeps_the_tokenizer_and_stops_at_end_of_turn(first_run, eot_checkpoint):
    from transformers import AutoTokenizer, GenerationConfig

    output_dir, _ = first_run
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    original = AutoTokenizer.from_pretrained(eot_checkpoint)
    assert tokenizer.chat_template == original.chat_template  # the student's chat template is unchanged
    assert tokenizer.eos_token == original.eos_token == "<|endoftext|>"
    eos = GenerationConfig.from_pretrained(output_dir).eos_token_id
    eos = [eos] if isinstance(eos, int) else eos
    assert tokenizer.convert_tokens_to_ids(END_OF_TURN) in eos
    assert tokenizer.eos_token_id in eos  # the model's own EOS still stops it too


def test_model_card(first_run):
    """The card is read back with huggingface_hub's own parser: a local base model is left out, never "None"."""
    from huggingface_hub import ModelCard

    output_dir, _ = first_run
    card = ModelCard.load(output_dir / "README.md", ignore_metadata_errors=False)
    meta = card.data.to_dict()
    assert {"cgd", "critique-guided-distillation", "trl", "arxiv:2505.11628"} <= set(meta["tags"])
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    assert "base_model" not in meta and "datasets" not in meta  # a local model and a local .jsonl: no Hub ids
    assert "None" not in card.text and "licence" not in card.content
    assert (
        "method `cgd`" in card.text and "arXiv:2505.11628" in card.text and "@inproceedings{kapusuzoglu" in card.text
    )
    procedure = card.text.split("## Training procedure", 1)[1].split("### Framework versions", 1)[0]
    assert "| recipe | `recipes/smollm2-135m/cgd.yaml` |" in procedure and "CGD encoding: 32/32 rows kept" in procedure
    assert str(REPO_ROOT) not in card.content and "/tmp" not in card.content  # no local paths published


def test_rerun_resumes_from_the_last_checkpoint(resumed_run):
    output_dir, proc = resumed_run
    assert "Resuming training from" in proc.stdout + proc.stderr
    assert re.search(r"checkpoint-16", proc.stdout + proc.stderr)
    # Only the steps after 16 were trained (and logged) by this run.
    assert len(logged_losses(proc.stdout)) == 4
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 32
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps == [4, 8, 12, 16, 20, 24, 28, 32]  # the first run's history carried over, then continued


def test_trained_student_generates_from_the_question_alone_and_stops(resumed_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output_dir, _ = resumed_run
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    model = AutoModelForCausalLM.from_pretrained(output_dir).eval()
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    assert end_of_turn != tokenizer.eos_token_id  # so stopping here proves the generation config was extended
    row = make_triplet_rows(1, seed=123)[0]
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": row["question"]}], tokenize=False, add_generation_prompt=True
    )
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    max_new_tokens = 48
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    assert new[-1] == end_of_turn and len(new) < max_new_tokens, tokenizer.decode(new)
    assert tokenizer.decode(new, skip_special_tokens=True).startswith("The answer is")  # what it was taught


def test_two_cpu_processes_train(tmp_path, eot_checkpoint, triplets_jsonl):
    """DDP over gloo: `--multi_gpu` picks accelerate's torchrun launcher, `use_cpu` in cpu.yaml keeps it on CPU."""
    output_dir = tmp_path / "ddp"
    run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            *flags(config_file=REPO_ROOT / "recipes" / "accelerate_configs" / "cpu.yaml"),
            "--multi_gpu",
            *flags(num_processes=2),
            *train_cmd(
                *flags(model_name_or_path=eot_checkpoint, dataset_name=triplets_jsonl, output_dir=output_dir),
                *flags(max_steps=2),
                *FAST,
            )[1:],  # accelerate runs `-m cgd.train ...` with its own interpreter
        ],
        timeout=400,
    )
    state = json.loads((output_dir / "trainer_state.json").read_text())
    # 32 rows, 8 per process per step: 2 processes take 16 rows a step, so 2 steps are a full epoch (one process
    # would be at half an epoch).
    assert state["global_step"] == 2
    assert state["epoch"] == pytest.approx(1.0)
    assert (output_dir / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------------------------------------
# In-process: the trainer's seams, LoRA and the errors users hit
# ------------------------------------------------------------------------------------------------------------------


def make_args(tmp_path, **kwargs) -> CGDConfig:
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=4,
        max_length=256,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        gradient_checkpointing=False,
        disable_tqdm=True,
        seed=0,
    )
    defaults.update(kwargs)
    return CGDConfig(**defaults)


def test_padding_free_is_handed_to_the_cgd_collator(tmp_path, tiny_checkpoint, triplet_rows):
    """TRL refuses custom collators with padding_free; CGDTrainer hides the flag from it and gives it to its collator.
    Same rows, same seed: padded and padding-free runs log the same losses."""
    from datasets import Dataset

    from cgd.trainer import CGDTrainer

    losses = {}
    for padding_free in (False, True):
        args = make_args(tmp_path, padding_free=padding_free, max_steps=3)
        trainer = CGDTrainer(model=str(tiny_checkpoint), args=args, train_dataset=Dataset.from_list(triplet_rows))
        assert trainer.data_collator.padding_free is padding_free
        assert trainer.padding_free is padding_free and args.padding_free is padding_free  # restored after init
        batch = next(iter(trainer.get_train_dataloader()))
        assert ("position_ids" in batch and batch["input_ids"].shape[0] == 1) is padding_free
        trainer.train()
        losses[padding_free] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_length_column_feeds_the_length_grouped_sampler(tmp_path, tiny_checkpoint, triplet_rows):
    from datasets import Dataset
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from cgd.trainer import CGDTrainer

    args = make_args(tmp_path, train_sampling_strategy="group_by_length", max_steps=1)
    trainer = CGDTrainer(model=str(tiny_checkpoint), args=args, train_dataset=Dataset.from_list(triplet_rows))
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler)
    assert list(sampler.lengths) == trainer.train_dataset["length"]
    assert trainer.train_dataset["length"] == [len(ids) for ids in trainer.train_dataset["input_ids"]]


def test_trainer_reports_rows_and_links_the_dataset_in_the_card(tmp_path, tiny_checkpoint, triplet_rows):
    from datasets import Dataset

    from cgd.trainer import CGDTrainer

    rows = [dict(r) for r in triplet_rows]
    rows[3]["refined_response"] = "   "
    args = make_args(tmp_path, method="cgd", drop_invalid_rows=True, max_steps=1)
    trainer = CGDTrainer(model=str(tiny_checkpoint), args=args, train_dataset=Dataset.from_list(rows))
    assert trainer.validation_reports["train"].rows_dropped == 1
    assert trainer.encoding_reports["train"].rows_out == len(rows) - 1
    assert len(trainer.train_dataset) == len(rows) - 1
    trainer.create_model_card(model_name="student", dataset_name="my-org/webinstruct-cgd")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "https://huggingface.co/datasets/my-org/webinstruct-cgd" in card
    n = len(rows)
    assert f"{n - 1}/{n} rows kept, 1 dropped" in card and f"CGD encoding: {n - 1}/{n - 1} rows kept" in card


def test_missing_column_fails_clearly(tmp_path, tiny_checkpoint, triplet_rows):
    from datasets import Dataset

    from cgd.trainer import CGDTrainer

    rows = [{k: v for k, v in r.items() if k != "critique"} for r in triplet_rows]
    with pytest.raises(TripletValidationError, match=r"missing column\(s\) \['critique'\] required by method 'cgd'"):
        CGDTrainer(model=str(tiny_checkpoint), args=make_args(tmp_path), train_dataset=Dataset.from_list(rows))
    # The same rows are fine for a method that does not read the critique.
    CGDTrainer(
        model=str(tiny_checkpoint), args=make_args(tmp_path, method="sft"), train_dataset=Dataset.from_list(rows)
    )


def write_recipe(tmp_path: Path, **overrides) -> Path:
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe.update(overrides)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_empty_target_fails_through_the_entry_point_naming_the_row(tmp_path, tiny_checkpoint):
    rows = make_triplet_rows(8)
    rows[5]["refined_response"] = ""
    data = tmp_path / "bad.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = write_recipe(tmp_path, model_name_or_path=str(tiny_checkpoint), dataset_name=str(data))
    with pytest.raises(SystemExit) as err:
        main(["--config", str(recipe), "--output_dir", str(tmp_path / "out")])
    message = str(err.value)
    assert message.startswith("cgd.train: error:")
    assert "row 5 (id='row-5')" in message and "'refined_response'" in message and "empty" in message
    assert "drop_invalid_rows" in message  # tells the user the way out


def test_misspelled_recipe_key_fails_with_a_suggestion(tmp_path):
    recipe = write_recipe(tmp_path, lerning_rate=1e-5)
    with pytest.raises(SystemExit) as err:
        main(["--config", str(recipe)])
    message = str(err.value)
    assert "Unknown key(s) in recipe" in message
    assert "'lerning_rate' (did you mean 'learning_rate'?)" in message


def test_misspelled_command_line_flag_fails_with_a_suggestion():
    # A prefix of a real flag: argparse's abbreviation matching would silently accept it.
    with pytest.raises(SystemExit) as err:
        main(["--config", str(RECIPE), "--num_train_epoch", "2"])
    assert "'num_train_epoch' (did you mean 'num_train_epochs'?)" in str(err.value)


def test_bad_value_fails_at_parse_time_in_one_line():
    with pytest.raises(SystemExit) as err:
        main(["--config", str(RECIPE), "--method", "cgd_v2"])
    assert str(err.value) == (
        "cgd.train: error: argument --method: invalid choice: 'cgd_v2' "
        "(choose from 'cgd', 'cgd_no_critique', 'cft', 'sft', 'distilled_sft')"
    )


def test_lora_through_model_config(tmp_path, tiny_checkpoint, triplets_jsonl):
    output_dir = tmp_path / "lora"
    argv = [
        *flags(config=RECIPE, model_name_or_path=tiny_checkpoint, dataset_name=triplets_jsonl, output_dir=output_dir),
        *flags(use_peft="true", lora_r=4, lora_alpha=8, max_steps=3),
        *["--lora_target_modules", "q_proj", "v_proj"],
        *FAST,
    ]
    _, _, model_args = parse_args(argv)
    assert model_args.use_peft and model_args.lora_target_modules == ["q_proj", "v_proj"]
    main(argv)
    adapter = json.loads((output_dir / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and set(adapter["target_modules"]) == {"q_proj", "v_proj"}
    assert (output_dir / "adapter_model.safetensors").is_file()
    assert not (output_dir / "model.safetensors").exists()  # an adapter, not a full copy
    assert (output_dir / "generation_config.json").is_file()
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    from huggingface_hub import ModelCard

    meta = ModelCard.load(output_dir / "README.md").data.to_dict()
    assert meta["library_name"] == "peft"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("org/data", "org/data"), ("./data/x.jsonl", None), ("/abs/path", None), ("data.jsonl", None), (None, None)],
)
def test_only_hub_ids_are_linked_as_datasets(name, expected):
    assert _hub_dataset_id(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"),
        ("/home/u/.cache/huggingface/hub/models--org--name/snapshots/abc123", "org/name"),
        ("./my-checkpoint", None),
        ("/abs/checkpoint", None),
        (None, None),
    ],
)
def test_base_model_is_a_hub_id_or_nothing(name, expected):
    from cgd.trainer import hub_model_id_of

    assert hub_model_id_of(name) == expected


def test_card_names_the_hub_base_model_and_datasets(tmp_path, tiny_checkpoint, triplet_rows):
    from datasets import Dataset
    from huggingface_hub import ModelCard

    from cgd.trainer import CGDTrainer

    trainer = CGDTrainer(
        model=str(tiny_checkpoint),
        args=make_args(tmp_path, max_steps=1, model_license="apache-2.0"),
        train_dataset=Dataset.from_list(triplet_rows),
    )
    trainer.base_model_id = "HuggingFaceTB/SmolLM2-135M-Instruct"  # as if loaded by that id
    trainer.create_model_card(dataset_name=["my-org/a", "my-org/b"])
    meta = ModelCard.load(tmp_path / "out" / "README.md", ignore_metadata_errors=False).data.to_dict()
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["datasets"] == ["my-org/a", "my-org/b"] and meta["license"] == "apache-2.0"


# ------------------------------------------------------------------------------------------------------------------
# Tokenizer settings applied before encoding, and the end-of-turn token
# ------------------------------------------------------------------------------------------------------------------


def test_chat_template_path_is_applied_before_encoding(tmp_path, tiny_checkpoint, triplet_rows):
    """TRL applies `chat_template_path` after CGD encoded the rows; the trainer must encode with the new one."""
    from datasets import Dataset

    from cgd.testing import CHATML_TEMPLATE
    from cgd.trainer import CGDTrainer

    template = tmp_path / "chat.jinja"
    new_template = CHATML_TEMPLATE.replace("message['role'] + '\n'", "message['role'] + ':\n'").replace(
        "'<|im_start|>assistant\n'", "'<|im_start|>assistant:\n'"
    )
    assert new_template != CHATML_TEMPLATE
    template.write_text(new_template)
    args = make_args(tmp_path, max_steps=1, chat_template_path=str(template))
    trainer = CGDTrainer(model=str(tiny_checkpoint), args=args, train_dataset=Dataset.from_list(triplet_rows))
    assert trainer.processing_class.chat_template == template.read_text()
    text = trainer.processing_class.decode(trainer.train_dataset[0]["input_ids"])
    assert text.startswith("<|im_start|>user:\n"), text[:40]  # trained in the format it is saved with


def test_template_without_end_of_turn_token_stops_at_eos(tmp_path, tiny_checkpoint, triplet_rows):
    """`role: content` templates have no end-of-turn token: the word before it must not become the EOS."""
    from datasets import Dataset

    from cgd.trainer import CGDTrainer

    template = tmp_path / "plain.jinja"
    template.write_text(
        "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
    )
    args = make_args(tmp_path, max_steps=1, chat_template_path=str(template))
    trainer = CGDTrainer(model=str(tiny_checkpoint), args=args, train_dataset=Dataset.from_list(triplet_rows))
    tokenizer = trainer.processing_class
    assert trainer.end_of_turn_token_id == tokenizer.eos_token_id
    eos = trainer.model.generation_config.eos_token_id
    assert (eos if isinstance(eos, list) else [eos]) == [tokenizer.eos_token_id]  # no word id written as EOS
    labels = trainer.train_dataset[0]["labels"]
    assert labels[-1] == tokenizer.eos_token_id  # and the student learns to emit it


# ------------------------------------------------------------------------------------------------------------------
# Data selection: configs, splits, held-out fraction, mixtures
# ------------------------------------------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_on_builder_output_without_a_test_split(tmp_path, tiny_checkpoint, triplets_jsonl):
    """The builder writes only `train`: eval needs a held-out fraction, and says so when it is missing."""
    base = [*flags(config=RECIPE, model_name_or_path=tiny_checkpoint, dataset_name=triplets_jsonl), *FAST]
    with pytest.raises(SystemExit) as err:
        main([*base, *flags(output_dir=tmp_path / "a", eval_strategy="steps", max_steps=2)])
    message = str(err.value)
    assert "no split 'test'" in message and "test_split_size" in message and "\n" not in message

    output_dir = tmp_path / "b"
    main(
        [*base, *flags(output_dir=output_dir, eval_strategy="steps", eval_steps=1, max_steps=2, test_split_size=0.25)]
    )
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert any("eval_loss" in entry for entry in state["log_history"])
    results = json.loads((output_dir / "train_results.json").read_text())
    assert results["train_samples"] == 24  # 32 rows, a quarter held out


def test_mixture_of_two_triplet_datasets(tmp_path, tiny_checkpoint):
    """TRL's `datasets:` mixture, each entry a triplet file: both are trained on."""
    a = write_jsonl(tmp_path / "a.jsonl", make_triplet_rows(8, seed=1))
    b = write_jsonl(tmp_path / "b.jsonl", make_triplet_rows(12, seed=2))
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe.pop("dataset_name")
    recipe["datasets"] = [
        {"path": str(a)},
        {"path": str(b), "columns": ["id", "question", "initial_response", "critique", "refined_response"]},
    ]
    recipe["datasets"][0]["columns"] = recipe["datasets"][1]["columns"]
    path = tmp_path / "mixture.yaml"
    path.write_text(yaml.safe_dump(recipe))
    output_dir = tmp_path / "out"
    main([*flags(config=path, model_name_or_path=tiny_checkpoint, output_dir=output_dir, max_steps=1), *FAST])
    assert json.loads((output_dir / "train_results.json").read_text())["train_samples"] == 20


# ------------------------------------------------------------------------------------------------------------------
# Errors before any work: the model source and the Hub target
# ------------------------------------------------------------------------------------------------------------------


def test_hub_model_id_offline_fails_at_once_naming_the_local_model(tmp_path, triplets_jsonl):
    import time

    start = time.monotonic()
    with pytest.raises(SystemExit) as err:
        main(["--config", str(RECIPE), "--dataset_name", str(triplets_jsonl), "--output_dir", str(tmp_path)])
    message = str(err.value)
    assert time.monotonic() - start < 10
    assert "'HuggingFaceTB/SmolLM2-135M-Instruct' is a Hub id" in message and "offline" in message
    assert "--model_name_or_path cache/models/SmolLM2-135M-Instruct" in message and "\n" not in message


def test_missing_model_folder_is_one_clear_line(tmp_path):
    with pytest.raises(SystemExit) as err:
        main(["--config", str(RECIPE), "--model_name_or_path", "./no/such/model", "--output_dir", str(tmp_path)])
    message = str(err.value)
    assert message.startswith("cgd.train: error: `model_name_or_path`: no such model folder './no/such/model'")
    assert "\n" not in message


def test_push_to_hub_is_checked_before_training(tmp_path, tiny_checkpoint, triplets_jsonl, monkeypatch):
    import huggingface_hub

    argv = [
        *flags(config=RECIPE, model_name_or_path=tiny_checkpoint, dataset_name=triplets_jsonl),
        *flags(output_dir=tmp_path / "out", push_to_hub="true", hub_model_id="my-org/student"),
    ]
    with pytest.raises(SystemExit, match="`push_to_hub: true` needs the Hub, but it is offline"):
        main(argv)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored token
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(SystemExit, match="needs a Hub token with write access"):
        main(argv)
    assert not (tmp_path / "out").exists()  # nothing ran


def test_hub_model_revision_branch_is_created_before_training(tmp_path, monkeypatch):
    import huggingface_hub

    from cgd.train import check_push_target

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def whoami(self):
            calls.append(("whoami",))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id))
            return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

        def create_branch(self, repo_id, branch, exist_ok):
            calls.append(("create_branch", repo_id, branch))

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    args = make_args(tmp_path, push_to_hub=True, hub_model_id="my-org/student", hub_model_revision="v1", hub_token="t")
    check_push_target(args)
    assert calls == [
        ("token", "t"),
        ("whoami",),
        ("create_repo", "my-org/student"),
        ("create_branch", "my-org/student", "v1"),
    ]
