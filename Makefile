# painter: `make demo` (offline, built-in data), `make all` (Kaggle data), `make test`.
# Every target installs .venv first when it is missing or pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed
PAINTER := $(VENV)/bin/painter
# The measured best (README, "Which architecture should I submit?"); CONFIG=configs/<arch>.toml for another.
CONFIG ?= configs/cut.toml
# make all SOURCE=path/to/unzipped/competition  (a folder with monet_jpg/) skips the Kaggle download
SOURCE ?=
SOURCE_SET := $(if $(SOURCE),--set data.source=$(SOURCE))
ARGS ?=

# The PyTorch a Kaggle kernel runs painter on (its image's torch, with the matching torchvision), in
# a virtual environment of its own: `make test-kaggle` before any change to the kernel.
# Kaggle's image runs Python 3.12: the first python3.12 that runs (a pyenv shim may not), else python3.11.
KAGGLE_PYTHON ?= $(firstword $(foreach p,python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.11,\
	$(if $(shell $(p) -c 'print(1)' 2>/dev/null),$(p))))
KAGGLE_TORCH ?= 2.10.0
KAGGLE_TORCHVISION ?= 0.25.0
KAGGLE_VENV := .venv-kaggle
KAGGLE_PY_VERSION := $(shell $(KAGGLE_PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
KAGGLE_INSTALLED := $(KAGGLE_VENV)/.installed-$(KAGGLE_TORCH)-py$(KAGGLE_PY_VERSION)

.PHONY: setup demo all test test-kaggle sweep download prepare train generate score submit leaderboard

setup: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install -e '.[test]'
	@# torchvision and torch must come from matching builds; fail here, not mid-run
	$(VENV)/bin/python -c "import torch, torchvision, torch_fidelity; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	@touch $@

demo: $(INSTALLED)
	$(PAINTER) run --config configs/demo.toml $(ARGS)

all: $(INSTALLED)
	$(PAINTER) run --config $(CONFIG) $(SOURCE_SET) $(ARGS)

# Every architecture with and without DiffAugment under one budget, then the report (see README).
sweep: $(INSTALLED)
	$(PAINTER) sweep $(SOURCE_SET) $(ARGS)

test: $(INSTALLED)
	@# One worker a core, each test file on one worker (its module fixtures built once), one thread a worker:
	@# two workers of two threads on two cores wait on each other's threads. On a quiet 2-core machine like
	@# CI's: 7.8 min against 11.9 serially with two threads.
	OMP_NUM_THREADS=1 $(VENV)/bin/python -m pytest -q -n auto --dist loadfile --durations=15 $(ARGS)

$(KAGGLE_INSTALLED): pyproject.toml
	@# a venv of another Python (an earlier 3.11 one) is made anew
	@$(KAGGLE_VENV)/bin/python -c 'import sys; assert "%d.%d" % sys.version_info[:2] == "$(KAGGLE_PY_VERSION)"' 2>/dev/null \
		|| { rm -rf $(KAGGLE_VENV) && $(KAGGLE_PYTHON) -m venv $(KAGGLE_VENV); }
	$(KAGGLE_VENV)/bin/python -m pip install --upgrade pip
	$(KAGGLE_VENV)/bin/python -m pip install 'torch==$(KAGGLE_TORCH)' 'torchvision==$(KAGGLE_TORCHVISION)'
	$(KAGGLE_VENV)/bin/python -m pip install -e '.[test]'
	$(KAGGLE_VENV)/bin/python -c "import torch, torchvision; assert torch.__version__.startswith('$(KAGGLE_TORCH)'), torch.__version__; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	@touch $@

# The whole suite under Kaggle's torch (not in CI: it does not fit beside `make test`).
test-kaggle: $(KAGGLE_INSTALLED)
	$(KAGGLE_VENV)/bin/python -m pytest -q --durations=15 $(ARGS)

# One target per stage; each runs the stages before it first (those are skipped when up to date).
download: $(INSTALLED)
	$(PAINTER) download --config $(CONFIG) $(SOURCE_SET) $(ARGS)
prepare: download
	$(PAINTER) prepare --config $(CONFIG) $(SOURCE_SET) $(ARGS)
train: prepare
	$(PAINTER) train --config $(CONFIG) $(SOURCE_SET) $(ARGS)
generate: train
	$(PAINTER) generate --config $(CONFIG) $(SOURCE_SET) $(ARGS)
score: generate
	$(PAINTER) score --config $(CONFIG) $(SOURCE_SET) $(ARGS)
submit: score
	$(PAINTER) submit --config $(CONFIG) $(SOURCE_SET) $(ARGS)
leaderboard: $(INSTALLED)
	$(PAINTER) leaderboard
