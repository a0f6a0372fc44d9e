"""`cgd-merge`: a LoRA adapter merged into its base gives the same logits as the adapter applied, and bad input fails
in one line before any weights load. Offline, on the tiny random Llama of cgd.testing with a LoRA adapter made here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cgd.tools.merge import main

INPUT_IDS = torch.tensor([[1, 17, 42, 99, 7, 256, 3, 64]])


@pytest.fixture(scope="module")
def lora_adapter(tmp_path_factory, tiny_checkpoint) -> Path:
    """A LoRA adapter on q/v projections with random (non-zero) B matrices, saved as `cgd-train --use_peft` saves one:
    adapter weights, tokenizer, and a generation config whose EOS list differs from the base model's."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("adapter") / "tiny-cgd-lora"
    base = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, config)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(path)
    generation_config = model.base_model.model.generation_config
    generation_config.eos_token_id = [generation_config.eos_token_id, 5]
    generation_config.save_pretrained(path)
    (path / "README.md").write_text("---\nlicense: apache-2.0\ndatasets:\n- my-org/cgd-triplets\n---\n# adapter\n")
    return path


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=INPUT_IDS).logits


def merge(*args: str) -> str:
    """Run `cgd-merge` in-process; return the one-line error it exits with ('' on success)."""
    try:
        main([str(a) for a in args])
    except SystemExit as exit:
        return str(exit.code)
    return ""


def test_merged_model_gives_the_adapter_logits_and_serves_without_peft(tmp_path, lora_adapter, tiny_checkpoint):
    from huggingface_hub import ModelCard
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    out = tmp_path / "merged"
    assert merge("--adapter_path", lora_adapter, "--output_dir", out) == ""

    base = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32)
    base_logits = logits(base)
    adapted = logits(PeftModel.from_pretrained(base, lora_adapter))
    merged_model = AutoModelForCausalLM.from_pretrained(out)
    assert type(merged_model).__name__ == "LlamaForCausalLM"
    assert not (out / "adapter_config.json").exists()
    assert not any("lora" in key for key in merged_model.state_dict())
    assert (adapted - base_logits).abs().max() > 1e-3  # the adapter changes the model, so the next check can fail
    torch.testing.assert_close(logits(merged_model), adapted, rtol=1e-5, atol=1e-5)

    # Ready to serve: the adapter's tokenizer and generation config (its EOS list), and a card naming base + adapter.
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(lora_adapter).get_vocab()
    assert (
        GenerationConfig.from_pretrained(out).eos_token_id
        == GenerationConfig.from_pretrained(lora_adapter).eos_token_id
    )
    card = ModelCard.load(out / "README.md")
    assert "cgd" in card.data.tags and "arxiv:2505.11628" in card.data.tags
    assert card.data.base_model is None  # a local base is named in the text, not linked as a Hub id
    assert (card.data.license, card.data.datasets) == ("apache-2.0", ["my-org/cgd-triplets"])  # from the adapter card
    assert f"`{tiny_checkpoint.name}` (local)" in card.text and "`tiny-cgd-lora`" in card.text
    for file in out.iterdir():  # nothing saved names a local path
        if file.suffix in (".json", ".md", ".jinja"):
            assert str(tmp_path.parent) not in file.read_text(), file.name


def test_card_links_hub_ids_and_never_local_paths():
    from huggingface_hub import ModelCard

    from cgd.tools.merge import model_card

    base = "HuggingFaceTB/SmolLM2-135M-Instruct"
    card = ModelCard(str(model_card(base, "my-org/smol-cgd-lora", {"r": 4}, None, adapter_from_hub=True)))
    assert card.data.base_model == base and card.data.base_model_relation == "merge"
    assert f"https://huggingface.co/{base}" in card.text and "https://huggingface.co/my-org/smol-cgd-lora" in card.text
    assert "@inproceedings{kapusuzoglu2026cgd" in card.text
    local = ModelCard(str(model_card(base, "outputs/smol-cgd-lora", {"r": 4})))  # a local folder named like an id
    assert "`smol-cgd-lora`" in local.text and "huggingface.co/outputs" not in local.text


def test_config_file_and_overrides(tmp_path, lora_adapter):
    from cgd.tools.merge import parse_args

    config = tmp_path / "merge.yaml"
    config.write_text(f"adapter_path: {lora_adapter}\noutput_dir: {tmp_path / 'a'}\ndtype: bfloat16\n")
    args = parse_args(["--config", str(config), "--output_dir", str(tmp_path / "b")])
    assert (args.adapter_path, args.output_dir, args.dtype) == (str(lora_adapter), str(tmp_path / "b"), "bfloat16")


def _adapter_naming(tmp_path: Path, lora_adapter: Path, base: str) -> Path:
    path = tmp_path / "adapter-elsewhere"
    path.mkdir()
    config = json.loads((lora_adapter / "adapter_config.json").read_text())
    (path / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base}))
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "does not exist: pass a local adapter folder or a Hub adapter id"),
        ("full_model", "has no adapter_config.json: it is a full model checkpoint, which needs no merge"),
        ("empty_folder", "has no adapter_config.json: it is not a PEFT adapter folder"),
        ("base_offline", "is not in the Hub cache and the Hub is offline (HF_HUB_OFFLINE=1)"),
        ("base_moved", "(named in adapter_config.json) does not exist on this machine"),
        ("typo", "Unknown key(s) on the command line: 'adapter_pth' (did you mean 'adapter_path'?)"),
        ("no_output", "output_dir is required"),
        ("output_is_model", "already holds a model; pass --overwrite_output_dir true"),
    ],
)
def test_bad_input_fails_in_one_line(case, expected, tmp_path, monkeypatch, lora_adapter, tiny_checkpoint):
    import huggingface_hub
    import transformers

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was checked")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    adapter, out = lora_adapter, tmp_path / "out"
    extra: list = []
    if case == "missing":
        adapter = tmp_path / "no-such-adapter"
    elif case == "full_model":
        adapter = tiny_checkpoint
    elif case == "empty_folder":
        adapter = tmp_path / "empty"
        adapter.mkdir()
    elif case == "base_offline":
        adapter = _adapter_naming(tmp_path, lora_adapter, "cgd-tests/no-such-base-model")
    elif case == "base_moved":
        adapter = _adapter_naming(tmp_path, lora_adapter, str(tmp_path / "moved-base"))
    elif case == "typo":
        extra = ["--adapter_pth", "x"]
    elif case == "output_is_model":
        out = tiny_checkpoint
    args = ["--adapter_path", adapter, *(["--output_dir", out] if case != "no_output" else []), *extra]
    message = merge(*args)
    assert message.startswith("cgd-merge: error: ") and "\n" not in message, message
    assert expected in message, message
