"""``python -m cgd.demo`` runs the main job (same as ``cgd-demo``)."""

from cgd.demo.run import cli

cli()
