"""The one argument parser of every ``cgd`` program: TRL's ``TrlParser``, strict about names, terse about errors.

Each program declares its settings as dataclasses (``help`` metadata is the documentation) and parses
``[--config file.yaml] [--key value ...]`` with :class:`StrictParser`: the YAML sets the defaults, flags override
them, as in TRL's own scripts. On top of ``TrlParser`` it

- checks every YAML key and every flag *before* the dataclasses are built (a ``__post_init__`` error must not hide
  a typo), and names each unknown one with the closest known key;
- refuses abbreviations (argparse would read ``--num_train_epoch`` as ``--num_train_epochs``);
- raises one line instead of printing argparse's usage: as ``error`` (the program's own exception type, so that its
  entry point reports it like its other input errors) or, by default, printed as ``<prog>: error: ...`` with exit
  status 2, as argparse does.

What differs between programs is a parameter, never a copy: the exception, and with ``located=True`` error lines that
start with where the bad key or value came from (``Command line: ...`` or ``Recipe <file>: ...``), as the dataset
builder words all its errors.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

import yaml
from trl import TrlParser

#: How close a misspelling must be to a key to be suggested (difflib's ratio; its own default).
SUGGESTION_CUTOFF = 0.6


def load_yaml(path: str, error: Callable[[str], BaseException] = ValueError) -> dict[str, Any]:
    """``path`` read with ``yaml.safe_load`` as a mapping; every way it can be unreadable is one line naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise error(f"Recipe {path} does not exist") from None
    except IsADirectoryError:
        raise error(f"Recipe {path} is a folder, not a YAML file") from None
    except UnicodeDecodeError as err:
        raise error(f"Recipe {path} is not UTF-8 text (byte {err.start})") from None
    except yaml.constructor.ConstructorError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else "?"
        tag = (err.problem or "").split("tag ")[-1].replace("tag:yaml.org,2002:", "!!")
        raise error(
            f"Recipe {path}, line {line}: the tag {tag} is not allowed; recipes are plain YAML values "
            "(read with yaml.safe_load)"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise error(f"Recipe {path}{where}: YAML syntax error: {getattr(err, 'problem', None) or err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"Recipe {path} must be a YAML mapping of `key: value` lines")
    return data


def suggest(keys: Iterable[str], known: Iterable[str], quote: str = "'") -> str:
    """``'lerning_rate' (did you mean 'learning_rate'?), 'x'``: each key with the closest known one, if any."""
    known = sorted(known)
    parts = []
    for key in keys:
        close = difflib.get_close_matches(key, known, n=1, cutoff=SUGGESTION_CUTOFF)
        parts.append(f"{quote}{key}{quote}" + (f" (did you mean {quote}{close[0]}{quote}?)" if close else ""))
    return ", ".join(parts)


def _flag_name(arg: str) -> str:
    """``--max-new-tokens=3`` -> ``max_new_tokens`` (HfArgumentParser also accepts the dashed spelling)."""
    return arg.split("=", 1)[0].lstrip("-").replace("-", "_")


class StrictParser(TrlParser):
    """``TrlParser`` that refuses unknown and abbreviated keys with a suggestion, and raises one line on any error.

    Args:
        dataclass_types: The program's argument dataclasses.
        prog: The command as a user types it (``--help`` and the error lines name it).
        error: Builds the exception raised for a bad key or value from its message; default: print
            ``<prog>: error: <message>`` on stderr and exit 2, as argparse does, without its usage.
        located: Error lines start with where the key or value came from (``Command line: ...`` /
            ``Recipe <file>: ...``) instead of saying it inside the sentence.
        quote: The mark around key names in error lines.
    """

    def __init__(
        self,
        dataclass_types: Any,
        *,
        prog: str,
        error: Callable[[str], BaseException] | None = None,
        located: bool = False,
        quote: str = "'",
        **kwargs: Any,
    ):
        super().__init__(dataclass_types, prog=prog, allow_abbrev=False, **kwargs)
        self.make_error = error or self._exit
        self.located = located
        self.quote = quote
        self.recipe_path: str | None = None  # the last parse's --config file
        self.cli_keys: set[str] = set()  # the keys the last parse's command line set

    def _exit(self, message: str) -> SystemExit:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        return SystemExit(2)

    def error(self, message: str):  # argparse calls it for a bad value; it would print the usage and exit 2
        if self.located:
            match = re.match(r"argument --(\w+)", message)
            message = f"{self.origin(match.group(1) if match else None)}: {message}"
        raise self.make_error(message)

    def known_keys(self) -> set[str]:
        """Every recipe key and flag name (the dataclass fields)."""
        return {action.dest for action in self._actions if action.dest != "help"}

    def _where(self, in_recipe: bool) -> str:
        if in_recipe:
            return f"Recipe {self.recipe_path}" if self.located else f"in recipe {self.recipe_path}"
        return "Command line" if self.located else "on the command line"

    def origin(self, key: str | None = None) -> str:
        """Where ``key``'s value came from in the last parse, as an error line says it: the command line or recipe."""
        return self._where(bool(self.recipe_path) and key is not None and key not in self.cli_keys)

    def _unknown(self, keys: list[str], where: str) -> BaseException:
        named = suggest(keys, self.known_keys(), self.quote)
        sentence = f"{where}: unknown key(s) {named}" if self.located else f"Unknown key(s) {where}: {named}"
        return self.make_error(f"{sentence}; `{self.prog} --help` lists them")

    def check_keys(self, args: Iterable[str]) -> None:
        """Raise for any YAML key or flag that is not a field, or a stray value, before anything is built."""
        cli = list(args)
        self.recipe_path, self.cli_keys = None, set()
        if any(arg in ("-h", "--help") for arg in cli):
            return  # argparse prints the help and exits
        if "--config" in cli:
            i = cli.index("--config")
            if i + 1 >= len(cli):
                raise self.make_error("--config needs a YAML file")
            path = cli[i + 1]
            config = load_yaml(path, self.make_error)
            unknown = [str(key) for key in config if key not in self.known_keys() and key != "env"]  # env: TRL's
            self.recipe_path = path
            if unknown:
                raise self._unknown(unknown, self._where(in_recipe=True))
            del cli[i : i + 2]
        self.cli_keys = {_flag_name(arg) for arg in cli if arg.startswith("--")}
        required = [action for action in self._actions if action.required]
        for action in required:  # may be set by the YAML: the real parse reports what is still missing
            action.required = False
        try:
            _, rest = self.parse_known_args(cli)
        finally:
            for action in required:
                action.required = True
        flags = [_flag_name(arg) for arg in rest if arg.startswith("-")]
        if flags:
            raise self._unknown(flags, self._where(in_recipe=False))
        if rest:
            where = "Command line: unexpected" if self.located else "Unexpected"
            raise self.make_error(f"{where} argument(s) {rest}; every value follows a --key")

    def parse_args_and_config(self, args: Iterable[str] | None = None, **kwargs: Any) -> tuple[Any, ...]:
        """TRL's parse (YAML defaults, then flags, then ``env``) after :meth:`check_keys`."""
        args = list(sys.argv[1:] if args is None else args)
        self.check_keys(args)
        return super().parse_args_and_config(args, **kwargs)
