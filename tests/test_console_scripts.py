"""Every program a user runs is a console script: `cgd-<name> --help` exits 0, and for the programs configured by
dataclasses (recipes) it lists every key with its help text."""

from __future__ import annotations

import configparser
import dataclasses
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

SCRIPTS = {
    "cgd-build": "datasets_builders.build_cgd",
    "cgd-train": "cgd.train",
    "cgd-merge": "cgd.tools.merge",
    "cgd-entropy": "cgd.analysis.entropy",
    "cgd-demo": "cgd.demo.run",
    "cgd-evaluate": "cgd.eval.runner",
    "cgd-lighteval": "cgd.eval.cli",
}


def declared_scripts() -> dict[str, str]:
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    lines = config["options.entry_points"]["console_scripts"].splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.strip().startswith("#")]
    return {name.strip(): target.strip() for name, target in pairs}


def load(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


# The dataclasses whose fields are each program's recipe keys (TrlParser); cgd-lighteval is lighteval's typer CLI.
KEY_CLASSES = {
    "cgd-build": ["datasets_builders.config:ARG_CLASSES"],
    "cgd-train": ["cgd.config:CGDScriptArguments", "cgd.config:CGDConfig", "trl:ModelConfig"],
    "cgd-merge": ["cgd.tools.merge:MergeArguments"],
    "cgd-entropy": ["cgd.analysis.entropy:EntropyArguments"],
    "cgd-demo": ["cgd.demo.run:DemoArguments"],
    "cgd-evaluate": ["cgd.eval.runner:EvalArguments"],  # `cgd-evaluate --help` is `cgd-evaluate run --help`
    "cgd-lighteval": [],
}


def argument_dataclasses(name: str) -> list[type]:
    classes = []
    for target in KEY_CLASSES[name]:
        found = load(target)
        classes += list(found) if isinstance(found, tuple | list) else [found]
    return classes


def run_help(name: str, entry, capsys, monkeypatch) -> str:
    """``name --help`` in-process, as the console script calls it (with no arguments: it reads ``sys.argv``)."""
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as exit:
        entry() if not inspect.signature(entry).parameters else entry(["--help"])
    assert exit.value.code in (0, None)
    return capsys.readouterr().out


def squash(text: str) -> str:
    """Text without whitespace: argparse re-wraps help, breaking lines at spaces and after hyphens."""
    return re.sub(r"\s+", "", text)


def test_every_program_has_a_console_script():
    declared = declared_scripts()
    assert set(declared) == set(SCRIPTS) == set(KEY_CLASSES)
    for name, target in declared.items():
        assert target.split(":")[0] == SCRIPTS[name], name


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_exits_cleanly(name):
    """A console script runs ``sys.exit(entry())``: an entry point that returns anything but None/int exits 1."""
    entry = load(declared_scripts()[name])
    returns = inspect.signature(entry).return_annotation
    assert returns in (None, "None", int, "int"), f"{name} -> {entry.__qualname__} returns {returns}"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_lists_the_keys_with_their_help_text(name, capsys, monkeypatch):
    out = run_help(name, load(declared_scripts()[name]), capsys, monkeypatch)
    assert "usage" in out.lower() or "Usage" in out, out[:500]
    text = squash(out)
    classes = argument_dataclasses(name)
    missing = []
    for cls in classes:
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            help_text = squash(f.metadata.get("help", ""))
            if f"--{f.name}" not in out or not help_text or squash(help_text[:60]).replace("%%", "%") not in text:
                missing.append(f"{cls.__name__}.{f.name}")
    assert not missing, f"{name} --help lacks these keys or their help text: {missing}"


def test_installed_console_script_runs():
    """The script pip generated from setup.cfg (``make venv`` reinstalls when setup.cfg changes)."""
    script = Path(sys.executable).parent / "cgd-merge"
    assert script.is_file(), f"{script} is missing: reinstall the package (`make venv` or `pip install -e .`)"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "--adapter_path" in proc.stdout and "--base_model_name_or_path" in proc.stdout
