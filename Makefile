# irbench make targets (CI calls `make install test-all`).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
TORCH_VERSION ?= 2.13.0
DATA ?= ../shared/data
MODELS ?= ../shared/models

.PHONY: install test test-all lint bench leaderboard clean

# CPU torch first: a bare `torch` requirement would otherwise pull several GB of CUDA wheels.
# From PyTorch's CPU index when it answers (probed first: pip would retry every dependency on
# an unreachable index); else from the configured index (a local CPU wheel on the CI
# machines). `make install TORCH_INDEX=` takes the configured index's build (CUDA on PyPI for
# Linux) for GPU machines.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
install:
	if [ -n "$(TORCH_INDEX)" ] && $(PYTHON) -c "import urllib.request as u; u.urlopen('$(TORCH_INDEX)/torch/', timeout=10)" >/dev/null 2>&1; then \
		$(PIP) install -q torch==$(TORCH_VERSION) --index-url $(TORCH_INDEX) || $(PIP) install -q torch==$(TORCH_VERSION); \
	else \
		[ -z "$(TORCH_INDEX)" ] || echo "note: $(TORCH_INDEX) did not answer (proxy or no network?); torch from the configured index"; \
		$(PIP) install -q torch==$(TORCH_VERSION); \
	fi
	$(PIP) install -q -e '.[dev,bench]'

test:
	$(PYTHON) -m pytest -q

test-all:
	$(PYTHON) -m pytest -q -m "slow or not slow"

lint:
	ruff check irbench tests
	ruff format --check irbench tests

bench:
	irbench bench bm25 dataset=scifact dataset.path=$(DATA)/scifact
	irbench bench bm25 dataset=vaswani dataset.path=$(DATA)/vaswani
	irbench bench dense dataset=scifact dataset.path=$(DATA)/scifact encoder=dense \
	    encoder.backbone=$(MODELS)/all-MiniLM-L6-v2

leaderboard:
	irbench leaderboard runs --baseline $(or $(BASELINE),bm25.numba) -o LEADERBOARD.md -o leaderboard.html

clean:
	rm -rf runs/.cache runs/.multirun .pytest_cache
