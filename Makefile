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

.PHONY: setup demo all test sweep download prepare train generate score submit leaderboard

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
	$(VENV)/bin/python -m pytest -q --durations=15 $(ARGS)

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
