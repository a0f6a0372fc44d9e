# cgd — common tasks. `make demo` and `make test` each set up .venv first (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: venv install test test-slow lint format clean

# torch first, pinned to the CPU wheel these machines carry; the rest then resolves against it.
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

venv install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) outputs build *.egg-info

# The main job (README command 1): embedded model -> questions -> CGD build -> train -> evaluate, offline on CPU.
# Extra flags go through DEMO_ARGS, e.g. `make demo DEMO_ARGS="--num_train 16 --num_eval 10"`.
.PHONY: model demo study
model: $(STAMP)
	$(PY) -m cgd.demo.embedded

demo: $(STAMP)
	$(PY) -m cgd.demo $(DEMO_ARGS)

study: $(STAMP)
	$(PY) -m cgd.demo --study $(DEMO_ARGS)

# Score checkpoints with lighteval and write the comparison report (cgd/eval/runner.py, docs/evaluation.md), e.g.
#   make evaluate MODEL="outputs/base outputs/cgd" TASKS=cgd_gsm8k,cgd_math500 \
#       EVAL_ARGS="--data_dir ../shared/data/eval --first_n 50 --device cpu --max_new_tokens 256"
# EVAL_ARGS takes any field of cgd.eval.runner.EvalArguments (or --config my_eval.yaml); a CPU run gets batch size 4.
MODEL ?= cache/models/SmolLM2-135M-Instruct
TASKS ?= paper_math
EVAL_OUT ?= outputs/eval
.PHONY: evaluate
evaluate: $(STAMP)
	$(PY) -m cgd.eval run --models $(MODEL) --tasks $(TASKS) --output_dir $(EVAL_OUT) $(EVAL_ARGS)
