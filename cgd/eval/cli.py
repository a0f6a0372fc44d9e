"""``python -m cgd.eval.cli ...`` -- lighteval's own CLI with cgd's offline/compat shims applied first.

Same commands and options as the ``lighteval`` executable (``accelerate``, ``endpoint litellm``,
``tasks list`` ...), e.g.::

    python -m cgd.eval.cli accelerate "model_name=HuggingFaceTB/SmolLM2-135M-Instruct" \\
        "cgd_math500|0" --custom-tasks eval_tasks/cgd_tasks.py --max-samples 10

See :mod:`cgd.eval.compat` for what is shimmed and why.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Apply the shims, then run lighteval's typer app with ``argv`` (default: ``sys.argv[1:]``)."""
    from cgd.eval.compat import apply

    apply()
    from lighteval.__main__ import app

    app(args=list(sys.argv[1:] if argv is None else argv), prog_name="python -m cgd.eval.cli")


if __name__ == "__main__":
    main()
