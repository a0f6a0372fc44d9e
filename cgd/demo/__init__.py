"""The main job on the embedded model: the demo script (:mod:`cgd.demo.run`), the embedded SmolLM2 checkpoint
(:mod:`cgd.demo.embedded`), the generated question set with worked solutions (:mod:`cgd.demo.questions`) and the
held-out report with intervals (:mod:`cgd.demo.report`).

:func:`parse_arguments` is the one argument parser of these three commands: one dataclass, TRL's ``TrlParser``
(YAML with ``--config`` and flags) made strict by :class:`cgd.cli.StrictParser`: unknown keys refused with the
closest name, abbreviations refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def parse_arguments(cls: type[T], argv: Sequence[str] | None, prog: str) -> T:
    """``cls`` filled from ``[--config file.yaml] [--key value ...]``; a bad key exits with one line naming it."""
    from cgd.cli import StrictParser

    def error(message: str) -> SystemExit:  # the line is the exit message: callers and tests read it
        return SystemExit(f"{prog}: error: {message}")

    (args,) = StrictParser((cls,), prog=prog, error=error, located=True).parse_args_and_config(argv)
    return args
