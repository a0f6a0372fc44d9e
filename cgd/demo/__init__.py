"""The main job on the embedded model: the demo script (:mod:`cgd.demo.run`), the embedded SmolLM2 checkpoint
(:mod:`cgd.demo.embedded`) and the generated question set with worked solutions (:mod:`cgd.demo.questions`)."""
