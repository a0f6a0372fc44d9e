"""The one argument parser (cgd.cli.StrictParser): every program parses with it, and it is strict the same way."""

from __future__ import annotations

import configparser
import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from trl import TrlParser

from cgd.cli import StrictParser

#: Every program configured by dataclasses: the entry point a user runs (console script or ``python -m``).
ENTRY_POINTS = {
    "cgd-train": "cgd.train:main",
    "cgd-build": "datasets_builders.build_cgd:main",
    "cgd-merge": "cgd.tools.merge:main",
    "cgd-evaluate": "cgd.eval.runner:main",
    "cgd-evaluate report": "cgd.eval.runner:main",
    "cgd-entropy": "cgd.analysis.entropy:cli",
    "cgd-demo": "cgd.demo.run:cli",
    "python -m cgd.demo.questions": "cgd.demo.questions:main",
    "python -m cgd.demo.embedded": "cgd.demo.embedded:main",
}


class _Built(BaseException):
    """Stops an entry point as soon as it has built its parser (no program handler catches a BaseException)."""


def parser_classes(entry, argv: list[str], monkeypatch) -> list[type]:
    """The class of every TRL parser ``entry`` builds, recorded as it is built (nothing of the program runs)."""
    built: list[type] = []
    original = TrlParser.__init__

    def record(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append(type(self))
        raise _Built

    with monkeypatch.context() as patch:
        patch.setattr(TrlParser, "__init__", record)
        patch.setattr(sys, "argv", ["prog", *argv])
        with pytest.raises(_Built):
            entry()
    return built


def load(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_every_program_parses_with_the_shared_strict_parser(name, monkeypatch):
    argv = ["report"] if name.endswith("report") else []
    assert parser_classes(load(ENTRY_POINTS[name]), argv, monkeypatch) == [StrictParser]


def test_every_console_script_is_checked():
    """A new console script configured by dataclasses joins ENTRY_POINTS (cgd-lighteval is lighteval's typer CLI)."""
    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    lines = config["options.entry_points"]["console_scripts"].splitlines()
    scripts = dict(
        tuple(part.strip() for part in line.split("=", 1))
        for line in lines
        if "=" in line and not line.strip().startswith("#")
    )
    assert {name: target for name, target in scripts.items() if name != "cgd-lighteval"} == {
        name: ENTRY_POINTS[name] for name in scripts if name != "cgd-lighteval"
    }


def test_the_check_sees_a_program_with_its_own_parser(monkeypatch):
    """Negative control: a program with its own TrlParser subclass, or TRL's plain one, is told apart."""

    class OwnParser(TrlParser):
        pass

    def own_program():
        OwnParser((Args,)).parse_args_and_config()

    def plain_program():
        TrlParser((Args,)).parse_args_and_config()

    assert parser_classes(own_program, [], monkeypatch) == [OwnParser]
    assert parser_classes(plain_program, [], monkeypatch) == [TrlParser]


@dataclass
class Args:
    learning_rate: float = field(default=1.0, metadata={"help": "Step size."})
    num_train_epochs: int = field(default=1, metadata={"help": "Epochs."})
    name: str = field(default="x", metadata={"help": "A name.", "choices": ["x", "y"]})

    def __post_init__(self):
        if self.learning_rate < 0:
            raise ValueError("learning_rate must be >= 0")


@dataclass
class NeedsModel:
    model: str = field(metadata={"help": "Required."})
    seed: int = field(default=0, metadata={"help": "Seed."})


class CustomError(ValueError):
    pass


def parse(argv: list[str], **kwargs) -> Args:
    (args,) = StrictParser((Args,), prog="prog", error=CustomError, **kwargs).parse_args_and_config(argv)
    return args


def test_yaml_then_flags_and_trl_env(tmp_path, monkeypatch):
    monkeypatch.delenv("CGD_CLI_TEST", raising=False)
    (tmp_path / "r.yaml").write_text("learning_rate: 0.5\nname: y\nenv:\n  CGD_CLI_TEST: set\n")
    args = parse(["--config", str(tmp_path / "r.yaml"), "--num-train-epochs", "3"])
    assert (args.learning_rate, args.num_train_epochs, args.name) == (0.5, 3, "y")
    import os

    assert os.environ["CGD_CLI_TEST"] == "set"  # TRL's `env:` key is not an unknown key


def test_unknown_and_abbreviated_keys_are_refused_with_a_suggestion(tmp_path):
    with pytest.raises(CustomError, match=r"^Unknown key\(s\) on the command line: 'num_train_epoch' \(did you mean "):
        parse(["--num_train_epoch", "2"])  # argparse alone would take this prefix for num_train_epochs
    (tmp_path / "r.yaml").write_text("lerning_rate: 0.1\nzzz: 1\n")
    with pytest.raises(CustomError) as err:
        parse(["--config", str(tmp_path / "r.yaml")])
    assert str(err.value) == (
        f"Unknown key(s) in recipe {tmp_path / 'r.yaml'}: 'lerning_rate' (did you mean 'learning_rate'?), 'zzz'; "
        "`prog --help` lists them"
    )
    with pytest.raises(CustomError, match=r"Unexpected argument\(s\) \['stray'\]"):
        parse(["stray"])


def test_keys_are_checked_before_the_dataclasses_are_built(tmp_path):
    """A typo is named even when another value would fail in ``__post_init__``."""
    (tmp_path / "r.yaml").write_text("learning_rate: -1\n")
    with pytest.raises(CustomError, match="'num_epochs'"):
        parse(["--config", str(tmp_path / "r.yaml"), "--num_epochs", "2"])
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):  # negative control: no typo, the value fails
        parse(["--config", str(tmp_path / "r.yaml")])


def test_located_wording_names_where_each_bad_key_or_value_came_from(tmp_path):
    (tmp_path / "r.yaml").write_text("learning_rate: hot\n")
    recipe = str(tmp_path / "r.yaml")
    with pytest.raises(CustomError, match=rf"^Recipe {recipe}: argument --learning_rate.*invalid float value: 'hot'"):
        parse(["--config", recipe], located=True)
    with pytest.raises(CustomError, match=r"^Command line: argument --name: invalid choice: 'w'"):
        parse(["--config", recipe, "--name", "w"], located=True)
    with pytest.raises(CustomError, match=r"^Command line: unknown key\(s\) `nme` \(did you mean `name`\?\)"):
        parse(["--nme", "x"], located=True, quote="`")
    (tmp_path / "r.yaml").write_text("nmae: x\n")
    with pytest.raises(CustomError, match=rf"^Recipe {recipe}: unknown key\(s\) 'nmae'"):
        parse(["--config", recipe], located=True)


def test_unreadable_recipes_are_one_line(tmp_path):
    with pytest.raises(CustomError, match=r"Recipe .*nope\.yaml does not exist"):
        parse(["--config", str(tmp_path / "nope.yaml")])
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(CustomError, match="must be a YAML mapping"):
        parse(["--config", str(tmp_path / "list.yaml")])
    with pytest.raises(CustomError, match="--config needs a YAML file"):
        parse(["--config"])


def test_a_required_key_may_come_from_the_recipe(tmp_path, capsys):
    parser = StrictParser((NeedsModel,), prog="prog")
    (tmp_path / "r.yaml").write_text("model: m\n")
    (args,) = parser.parse_args_and_config(["--config", str(tmp_path / "r.yaml"), "--seed", "2"])
    assert (args.model, args.seed) == ("m", 2)
    with pytest.raises(SystemExit) as exit_:  # default: one line on stderr, argparse's exit status, no usage
        StrictParser((NeedsModel,), prog="prog").parse_args_and_config(["--seed", "2"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err == "prog: error: the following arguments are required: --model\n"
