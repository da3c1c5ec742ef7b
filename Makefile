# Quickstart: `make reproduce` (set-up + dvc repro down to the paper PDF), `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup reproduce test lint latex benchmark reproduce-large

$(BIN)/dnb: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/dnb

setup: $(BIN)/dnb

# TeX for the paper stage: installed when missing and we are root on Debian, else the command is printed.
latex:
	@command -v latexmk >/dev/null && command -v pdflatex >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      texlive-latex-base texlive-latex-recommended texlive-fonts-recommended latexmk fluidsynth >/dev/null; \
	  else \
	    echo "The paper stage needs LaTeX. Run: sudo apt-get install -y --no-install-recommends texlive-latex-base texlive-latex-recommended texlive-fonts-recommended latexmk fluidsynth"; \
	  fi; }

reproduce: setup latex
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro

# The large corpus (../shared/corpora/ultimate-midi.tar.gz, or set LARGE_CORPUS to any MIDI folder/archive).
LARGE_CORPUS ?= ../shared/corpora/ultimate-midi.tar.gz
reproduce-large: setup latex
	$(BIN)/python -m dnb.profile large --corpus $(LARGE_CORPUS) | PATH=$(CURDIR)/$(BIN):$$PATH xargs -r $(BIN)/dvc exp run

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

benchmark: setup
	$(BIN)/python benchmarks/extract_speed.py
