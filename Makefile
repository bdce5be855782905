# The two commands of the README. Both set up .venv on first use (scripts/install.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
EXPERIMENT ?= baseline_xnli

.PHONY: setup smoke lint test test-fast bench bench-gpu
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $@

# The main job: a whole sweep (search, 3 seeds of every arm, tables, t-tests) on the smoke profile.
smoke: setup
	$(PY) -m orchestrator.sweep $(EXPERIMENT) --profile smoke

# The code's shape: ruff (undefined names, unused imports, ...) and the import contracts in
# pyproject.toml (layers, independent method packages, no cycles).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# The lint, then the whole test suite, slow end-to-end sweeps included (what CI runs), on two pytest-xdist
# workers, a test file wholly on one (its module fixtures, e.g. a three-node cluster, are built once): a
# sweep leaves a core idle between its trials (its start, a lone search trial, its report), which the
# other worker's tests fill. The 25 slowest tests are listed at the end, so the suite's time budget
# (25 minutes on 2 cores) can be watched.
test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=25

# The lint, then everything but the end-to-end sweeps.
test-fast: lint
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) bench/trainer_throughput.py
	$(PY) bench/salt_scan.py
	$(PY) bench/btf_mlm.py
	$(PY) bench/bootstrap.py

# One table of what a trial costs on this device (bench/gpu_report.py): ours vs HF Trainer, MFU, 1-8 trials
# per GPU, the SALT scan, Ray's overhead. GPU: mBERT-size, < 8 minutes; CPU: a small BERT, < 3 minutes.
bench-gpu: setup
	$(PY) bench/gpu_report.py
