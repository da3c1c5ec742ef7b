# Quickstart: `make reproduce` (set-up + dvc repro down to the paper PDF), `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup reproduce test lint latex benchmark reproduce-large push pull

$(BIN)/dnb: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/dnb

setup: $(BIN)/dnb

# System tools of the paper and demo stages (pdflatex + latexmk, fluidsynth, ffmpeg): installed when
# missing and we are root on Debian; otherwise the exact command is printed.
APT_PACKAGES := texlive-latex-base texlive-latex-recommended texlive-fonts-recommended latexmk fluidsynth ffmpeg
latex:
	@if command -v latexmk >/dev/null && command -v pdflatex >/dev/null && command -v fluidsynth >/dev/null \
	    && command -v ffmpeg >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    $(APT_PACKAGES) >/dev/null; \
	else \
	  echo "The paper and demo stages need: sudo apt-get install -y --no-install-recommends $(APT_PACKAGES)"; \
	fi

reproduce: setup latex
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro

# The large corpus (../shared/corpora/ultimate-midi.tar.gz, or set LARGE_CORPUS to any MIDI folder/archive).
LARGE_CORPUS ?= ../shared/corpora/ultimate-midi.tar.gz
reproduce-large: setup latex
	$(BIN)/python -m dnb.profile large --corpus $(LARGE_CORPUS) | PATH=$(CURDIR)/$(BIN):$$PATH xargs -r $(BIN)/dvc exp run

# The DVC remote (README, "Sharing data and checkpoints"): `make push` after `make reproduce` uploads the
# cached outputs (data, checkpoints); on another machine `make pull` fetches them, and `dnb generate` runs
# without training.
push: setup
	$(BIN)/dvc push

pull: setup
	$(BIN)/dvc pull

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

benchmark: setup
	$(BIN)/python benchmarks/extract_speed.py
