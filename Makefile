# The README's set-up is exactly `make demo` and `make test`; both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean

install: $(STAMP)

# torch first, pinned, so that nothing later pulls a CUDA build; then the package with its dev extras.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/tinypred demo

lint: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

test: install
	$(BIN)/ruff check src tests benchmarks examples
	# pytest exits 5 when it collects no tests; make would turn that into a plain failure.
	$(BIN)/python -m pytest -n 2 --dist loadfile || [ $$? -eq 5 ]

bench: install
	$(BIN)/python benchmarks/generate.py --json

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
