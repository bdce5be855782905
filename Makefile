# The two commands of the README. Both set up .venv on first use (scripts/install.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
EXPERIMENT ?= baseline_xnli

.PHONY: setup smoke test test-fast bench
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $@

# The main job: a whole sweep (search, 3 seeds of every arm, tables, t-tests) on the smoke profile.
smoke: setup
	$(PY) -m orchestrator.sweep $(EXPERIMENT) --profile smoke

# The whole test suite, slow end-to-end sweeps included (what CI runs).
test: setup
	$(PY) -m pytest -q

# Everything but the end-to-end sweeps.
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) bench/trainer_throughput.py
	$(PY) bench/salt_scan.py
	$(PY) bench/btf_mlm.py
