"""``python -m cgd.eval`` runs the suite runner (same as ``cgd-evaluate``)."""

import sys

from cgd.eval.runner import main

sys.exit(main())
