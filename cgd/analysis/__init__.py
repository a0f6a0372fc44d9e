"""Analyses of CGD data with a model, built on the core: the entropy tool (:mod:`cgd.analysis.entropy`)."""
