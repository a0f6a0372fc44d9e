"""Parse the teacher's verdict from the closing ``Conclusion: right|wrong`` line of a critique."""

from __future__ import annotations

import re

# "Conclusion: right", "**Conclusion:** Wrong", "### Conclusion - **RIGHT**", "conclusion： correct".
_CONCLUSION = re.compile(
    r"conclusion[\s*_`#]*[:：\-][\s*_`\"'\[(]*(right|wrong|incorrect|correct)\b",
    re.IGNORECASE,
)
_CANONICAL = {"right": "right", "correct": "right", "wrong": "wrong", "incorrect": "wrong"}


def parse_verdict(critique: str | None) -> str:
    """``"right"``, ``"wrong"`` or ``"unparsed"``; when several conclusions appear, the last one wins.

    Case, markdown emphasis/headings around the word and a full-width colon are tolerated;
    ``correct``/``incorrect`` count as ``right``/``wrong``. A conclusion that is not directly one of
    those words (``Conclusion: the answer is wrong``) is not guessed at: it stays ``unparsed``.
    """
    if not critique:
        return "unparsed"
    matches = _CONCLUSION.findall(critique)
    return _CANONICAL[matches[-1].lower()] if matches else "unparsed"
