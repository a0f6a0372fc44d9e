"""Critique-Guided Distillation on TRL.

The core library is the flat modules of this package: the triplet schema, prompt templates, the CGD collator,
`CGDConfig`/`CGDTrainer`, the training entry point, attention kernels, answer checking and verdict parsing. The
programs built on it live in subpackages: ``cgd.eval`` (evaluation), ``cgd.analysis`` (entropy tool),
``cgd.demo`` (the main job on the embedded model) and ``cgd.testing`` (tiny models and rows for tests).
"""

__version__ = "0.1.0"
