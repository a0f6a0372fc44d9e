"""Packaging: the license, every imported package declared, every extra explained, optional features that say how
to install them."""

from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cgd", "datasets_builders", "eval_tasks")


def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    return config


def requirements(value: str) -> list[Requirement]:
    return [Requirement(line) for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_license_is_shipped_and_declared():
    text = (REPO_ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text and len(text) > 11000
    metadata = setup_cfg()["metadata"]
    assert metadata["license"] == "Apache-2.0" and metadata["license_files"].split() == ["LICENSE"]


def imported_distributions() -> dict[str, set[str]]:
    """Third-party distributions the package code imports (at any depth), with the files that import each."""
    to_dist = packages_distributions()
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top in PACKAGES:
                        continue
                    for dist in to_dist.get(top, [top]):  # not installed (e.g. vllm): its import name
                        found.setdefault(canonicalize_name(dist), set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def test_every_imported_package_is_declared():
    options = setup_cfg()
    declared = {canonicalize_name(r.name) for r in requirements(options["options"]["install_requires"])}
    for value in options["options.extras_require"].values():
        declared |= {canonicalize_name(r.name) for r in requirements(value)}
    missing = {dist: sorted(files) for dist, files in imported_distributions().items() if dist not in declared}
    assert not missing, f"imported but not declared in setup.cfg (install_requires or an extra): {missing}"


def test_every_extra_says_why_and_is_bounded():
    lines = (REPO_ROOT / "setup.cfg").read_text().split("[options.extras_require]", 1)[1].split("\n[", 1)[0]
    lines = lines.strip().splitlines()
    extras = [(i, line.split("=")[0].strip()) for i, line in enumerate(lines) if re.match(r"^[a-z][\w-]* =", line)]
    assert {name for _, name in extras} >= {"deepspeed", "liger-kernel", "flash-attn", "wandb", "gpu", "litellm"}
    for i, name in extras:
        assert i > 0 and lines[i - 1].startswith("#"), f"extra {name!r} has no comment saying why"
    for name, value in setup_cfg()["options.extras_require"].items():
        for req in requirements(value):
            if name != "dev":
                assert any(spec.operator in ("<", "<=", "==") for spec in req.specifier), f"{name}: {req} is unbounded"


def test_litellm_backend_without_litellm_names_the_extra(monkeypatch):
    import importlib.util

    from cgd.eval import runner

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "litellm" else real_find_spec(name, *a)
    )
    with pytest.raises(ValueError, match=r'pip install "cgd\[litellm\]"'):
        runner.build_model_args("smol", backend="litellm", base_url="http://127.0.0.1:8000/v1")
