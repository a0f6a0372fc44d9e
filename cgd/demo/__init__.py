"""The main job on the embedded model: the demo script (:mod:`cgd.demo.run`), the embedded SmolLM2 checkpoint
(:mod:`cgd.demo.embedded`), the generated question set with worked solutions (:mod:`cgd.demo.questions`) and the
held-out report with intervals (:mod:`cgd.demo.report`).

:func:`parse_arguments` is the one argument parser of these three commands: one dataclass, TRL's ``TrlParser``
(YAML with ``--config`` and flags), unknown keys refused with the closest name, abbreviations refused.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def parse_arguments(cls: type[T], argv: Sequence[str] | None, prog: str) -> T:
    """``cls`` filled from ``[--config file.yaml] [--key value ...]``; a bad key exits with one line naming it."""
    import yaml
    from trl import TrlParser

    class Parser(TrlParser):
        def error(self, message: str):  # one line, not argparse's usage block
            raise SystemExit(f"{prog}: error: {message}")

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = Parser((cls,), prog=prog, allow_abbrev=False)
    known = {action.dest for action in parser._actions}
    unknown: list[str] = []
    rest = list(argv)
    if "--config" in rest:
        i = rest.index("--config")
        if i + 1 >= len(rest):
            raise SystemExit(f"{prog}: error: --config needs a YAML file")
        config = yaml.safe_load(Path(rest[i + 1]).read_text()) or {}
        if not isinstance(config, dict):
            raise SystemExit(f"{prog}: error: {rest[i + 1]} must be a YAML mapping of key: value")
        unknown += [str(key) for key in config if key not in known]
        rest = rest[:i] + rest[i + 2 :]
    if not any(a in ("-h", "--help") for a in rest):
        _, left = parser.parse_known_args(rest)
        unknown += [arg.split("=", 1)[0].lstrip("-") for arg in left if arg.startswith("-")]
        if left and not unknown:
            raise SystemExit(f"{prog}: error: unexpected arguments {left}")
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise SystemExit(f"{prog}: error: unknown key(s) {', '.join(hints)}; `{prog} --help` lists them")
    (args,) = parser.parse_args_and_config(argv)
    return args
