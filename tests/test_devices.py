"""`precision: auto` picks what is faster on the CPU it runs on, measuring once per machine and torch version."""

from __future__ import annotations

import json

import pytest
import torch

from ift_select.core import devices
from ift_select.core.errors import ConfigError


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "ift-select" / "precision.json"


def never(*_):
    pytest.fail("measured again although the verdict is cached")


def test_amx_is_bf16_and_no_bf16_units_is_fp32_without_measuring():
    assert devices.cpu_choice("Xeon", ("amx_tile", "avx512_bf16"), never).bf16
    assert not devices.cpu_choice("EPYC", ("avx512f", "avx2"), never).bf16


def test_avx512_bf16_without_amx_is_measured_once_and_cached(own_cache):
    slow = devices.cpu_choice("Zen 4", ("avx512_bf16", "avx512f"), lambda: 1 / 1.7)  # bf16 1.7x slower
    assert not slow.bf16 and "0.59x" in slow.reason
    again = devices.cpu_choice("Zen 4", ("avx512_bf16", "avx512f"), never)
    assert not again.bf16
    record = json.loads(own_cache.read_text())
    assert [r["cpu"] for r in record.values()] == ["Zen 4"] and all(r["torch"] == torch.__version__ for r in record.values())
    fast = devices.cpu_choice("Other CPU", ("avx512_bf16",), lambda: 1.5)  # another machine: its own measurement
    assert fast.bf16 and len(json.loads(own_cache.read_text())) == 2


def test_the_real_probe_measures_this_cpu(own_cache):
    speedup = devices.probed("this", ("avx512_bf16",))
    assert speedup > 0 and json.loads(own_cache.read_text())
    model, flags = devices.cpu_model_and_flags()
    assert model and devices.cpu_flags().startswith(model)


def test_choices_are_recorded_for_the_stage_metrics():
    devices._CHOICES.clear()
    assert devices.choices() == {}
    devices.use_bf16("fp32")
    picked = devices.use_bf16("auto")
    recorded = devices.choices()
    assert recorded["fp32"]["picked"] == "fp32" and recorded["auto"]["picked"] == ("bf16" if picked else "fp32")
    with pytest.raises(ConfigError, match="precision: 'fast' is not one of"):
        devices.use_bf16("fast")
