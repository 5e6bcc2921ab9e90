# Two commands for a fresh machine:
#   make demo   install into .venv, train the class-conditional DCGAN on MNIST, write sample grids
#   make test   install into .venv (with test tools) and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The machines here have no internet: use the shared MNIST copy beside the checkout if present.
DATA ?= $(firstword $(wildcard ../shared/datasets/mnist))
DATA_FLAG := $(if $(DATA),--data-dir $(DATA),)
RUN ?= runs/demo

.PHONY: demo test lint install clean

$(BIN)/ganforge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/ganforge

demo: install
	rm -rf $(RUN)
	$(BIN)/ganforge train $(DATA_FLAG) --network dcgan-cond --out $(RUN)
	$(BIN)/ganforge sample $(RUN) -n 100 --nrow 10 --out $(RUN)/demo_grid.png
	$(BIN)/ganforge interpolate $(RUN) --class 3 --from 1 --to 2 --steps 30 --out $(RUN)/walk.gif
	@echo "samples: $(RUN)/samples.png  (training grids in $(RUN)/samples/, walk: $(RUN)/walk.gif)"

test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info
