"""The one verdict parser: the teacher's closing ``Conclusion: right|wrong`` line of a critique.

The dataset builders read a critique's verdict with it (the ``verdict`` column), and the evaluation's format-drift
metrics (:func:`cgd.answers.has_verdict`, :func:`cgd.answers.looks_like_critique`) detect a verdict with it, so a
line the builder counts as a verdict is one the drift metric counts too.
"""

from __future__ import annotations

import re

__all__ = ["VERDICTS", "parse_verdict"]

#: The values :func:`parse_verdict` returns.
VERDICTS = ("right", "wrong", "unparsed")

# "Conclusion: right", "**Conclusion:** Wrong", "### Conclusion - **RIGHT**", "conclusion： correct" (full-width colon).
# No two adjacent quantifiers match the same characters, so a long run of spaces cannot make it backtrack.
_CONCLUSION = re.compile(
    r"conclusion[\s*_`#]*[:：\-][\s*_`\"'\[(]*(right|wrong|incorrect|correct)\b",
    re.IGNORECASE,
)
_CANONICAL = {"right": "right", "correct": "right", "wrong": "wrong", "incorrect": "wrong"}


def parse_verdict(critique: str | None) -> str:
    """``"right"``, ``"wrong"`` or ``"unparsed"``; when several conclusions appear, the last one wins.

    Case, markdown emphasis/headings around the word, a dash or a full-width colon are tolerated;
    ``correct``/``incorrect`` count as ``right``/``wrong``. A conclusion that is not directly one of those words
    (``Conclusion: the answer is wrong``) is not guessed at: it stays ``unparsed``.
    """
    if not critique:
        return "unparsed"
    matches = _CONCLUSION.findall(critique)
    return _CANONICAL[matches[-1].lower()] if matches else "unparsed"
