# One command per job; each sets up .venv first if it is missing or pyproject.toml changed.
VENV ?= .venv
PYTHON ?= python3
# DVC runs each stage's `python ...` through the shell: put the venv first on PATH so it is ours.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install lint lock repro check-repro test test-fast bench exp-show compare noise-floor sweep study clean

install: $(VENV)/.installed

# The exact versions behind the committed results (requirements.lock, written by scripts/lock.py),
# then the project itself without resolving anything again.
$(VENV)/.installed: pyproject.toml requirements.lock requirements-dev.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade --quiet pip
	@echo "Installing the locked versions into $(VENV): torch is large, the first time takes minutes."
	$(VENV)/bin/python -m pip install -r requirements.lock -r requirements-dev.lock
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

# The CI workflow is copied into other repositories. check-jsonschema checks the workflows against
# GitHub's schema (shipped with the tool), then zizmor audits their security offline: pinned actions,
# token permissions, injection (ignores, with their reasons, would go in .github/zizmor.yml).
# --strict-collection: without it zizmor skips, with a warning, a workflow it cannot parse.
lint: install  ## ruff's checks over the whole project (rules in pyproject.toml), then the schema and zizmor over .github/
	python -m ruff check .
	check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	zizmor --offline --strict-collection .github/

lock: install  ## rewrite requirements.lock and requirements-dev.lock from this venv (after an upgrade)
	python scripts/lock.py

repro: install  ## check params.yaml, download (or verify) MNIST, run every stage that is out of date
	python scripts/check_params.py params.yaml
	dvc repro

# FORCE=1 reruns every stage (dvc repro -f), as CI does; without it, only what DVC finds out of date.
check-repro: install  ## fail unless the rerun matches the committed dvc.lock and metrics (CI: FORCE=1)
	python scripts/check_params.py params.yaml
ifeq ($(FORCE),1)
	python scripts/check_repro.py --force
else
	dvc repro
	python scripts/check_repro.py
endif

test: install  ## the whole suite; the real-MNIST test runs when MNIST_AE_MIRROR names the files
	python -m pytest

test-fast: install  ## the suite without the end-to-end dvc runs
	python -m pytest -m "not slow"

bench: install  ## time training and t-SNE against the tutorial versions, side by side (ARGS="--repeats 3")
	python -m benchmarks.run $(ARGS)

# dvc exp show with the params that differ between experiments and the headline metrics (declared
# once, in src/mnist_ae/headline.py) kept even where equal; scripts/exp_show.py says what it drops.
exp-show: install  ## dvc exp show: the params that differ between experiments, and the headline metrics (ARGS=--md)
	python scripts/exp_show.py $(ARGS)

# The same headline metrics, per configuration: replicates (experiments that differ only in seeds)
# merged into mean ± sd, each difference from the baseline judged (scripts/compare.py).
compare: install  ## mean ± sd of the headline metrics per configuration, and what is beyond noise (ARGS="--md --baseline NAME")
	python scripts/compare.py $(ARGS)

# The defaults (sweeps/defaults.yaml: the manifold clustering on) over SEEDS replicates: their spread
# of every headline metric, into metrics/noise_floor.json. Runs the replicates HEAD has not yet, JOBS at a time.
SEEDS ?= 5
JOBS ?= 1
noise-floor: install  ## run the defaults over SEEDS seeds (default 5), JOBS at a time (default 1), and write their spread: metrics/noise_floor.json
	python scripts/noise_floor.py --seeds $(SEEDS) --jobs $(JOBS) $(ARGS)

# A sweep file's experiments (sweeps/*.yaml) in DVC's local queue, JOBS at a time; then make compare ARGS="--sweep SWEEP".
SWEEP ?= sweeps/n2d.yaml
sweep: install  ## queue the experiments of SWEEP (default sweeps/n2d.yaml: N2D's network) that HEAD has not run, JOBS at a time (ARGS="-S train.epochs=1 --seeds 1")
	python scripts/sweep.py queue $(SWEEP) --jobs $(JOBS) $(ARGS)

# The N2D study's tables (in docs/models.md and README.md) and its figure, from its committed rows
# (metrics/studies/*.csv); `python scripts/study.py export` first writes the rows of finished experiments.
study: install  ## remake the study's tables and figure from metrics/studies/*.csv
	python scripts/study.py render

clean:  ## remove the virtual environment and test caches (DVC's data stays)
	rm -rf $(VENV) .pytest_cache .hypothesis
