"""CGD dataset builders: probe, critique and refine stages, resumable, filtered, pushed to the Hub.

Entry point: ``python datasets_builders/build_cgd.py --config recipes/builders/<name>.yaml`` (or
``python -m datasets_builders.build_cgd``). See docs/builders.md.
"""
