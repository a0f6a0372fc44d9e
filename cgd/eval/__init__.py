"""Evaluation programs built on the core: the suite runner and report (:mod:`cgd.eval.runner`), lighteval's CLI with
this project's offline fixes (:mod:`cgd.eval.cli`) and the fixes themselves (:mod:`cgd.eval.compat`)."""
