"""Critique-Guided Distillation on TRL: templates, triplet schema, collator, trainer and tools."""

__version__ = "0.1.0"
