"""Programs that turn a training run into something to serve or publish: the LoRA merge (:mod:`cgd.tools.merge`)."""
