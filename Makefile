# Two entry points for a fresh machine; each installs what it needs into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-all lint format bench docs clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	# torchattacks pins an old `requests`; it is only a cross-check in the tests, so no deps.
	$(PY) -m pip install -q --no-deps 'torchattacks==3.5.1'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m noisemod demo

# the quick suite (every test but those marked slow: under 5 minutes on 2 cores after the install)
test: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

# every test, the slow ones (kills and resumes, Ray, sweeps, real-data training) first; CI runs this
test-all: $(VENV)/.installed
	$(PY) -m pytest -q --durations=15 $(PYTEST_ARGS)

# one style for the whole tree (configured in pyproject.toml); CI runs it before the tests
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.installed
	$(PY) -m benchmarks

# the docs' numbers and figures from the results archive (after archiving runs): the generated parts
# of README.md and every page of docs/ and docs/results/, the headline figure of the protocol
# tiers, the figure of VII along training of each tier, and the paper's figures 4 and 5 from their
# archives (ARCHIVE/FIGURE: docs/figures/ARCHIVE-FIGURE.png)
ARCHIVED_TRAINING ?= protocol-tier1 protocol-tier2
ARCHIVED_FIGURES ?= fig4-cpu-5seeds/fig4 fig5-cpu-5seeds/fig5 protocol-tier3-fcnn/fig5
docs: $(VENV)/.installed
	$(PY) -m noisemod docs README.md docs/*.md docs/results/*.md
	$(PY) -m noisemod figures $(addprefix results/,$(ARCHIVED_TRAINING)) --headline docs/figures/headline.png
	for a in $(ARCHIVED_TRAINING); do \
	  $(PY) -m noisemod figures results/$$a --out build/figures/$$a > /dev/null && \
	  cp build/figures/$$a/training.png docs/figures/$$a-training.png || exit 1; \
	done
	for f in $(ARCHIVED_FIGURES); do \
	  $(PY) -m noisemod figures results/$${f%/*} --out build/figures/$${f%/*} > /dev/null && \
	  cp build/figures/$$f.png docs/figures/$${f%/*}-$${f#*/}.png || exit 1; \
	done

clean:
	rm -rf $(VENV) build dist src/*.egg-info
