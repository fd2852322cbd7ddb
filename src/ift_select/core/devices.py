"""Device and precision: CUDA when present; ``precision: auto`` picks bf16 only where it is faster.

On a CPU, bf16 is fast with AMX; with AVX-512 BF16 alone a bf16 matmul can be 1.7x slower than fp32, so there
``auto`` measures both once (a Linear under autocast) and caches the verdict per machine in
``~/.cache/ift-select/precision.json``, keyed by CPU model, flags and torch version. Without either, fp32.
Every choice made in a process is kept (``choices()``) so the stage runner can put it in the stage's metrics.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

from ift_select.core.errors import ConfigError

if TYPE_CHECKING:  # torch loads on first use: stages that never touch a tensor skip its 3-second import
    import torch

PRECISIONS = ("auto", "bf16", "fp32")
CPU_FLAGS = ("amx_tile", "amx_bf16", "avx512_bf16", "avx512f", "avx2")
SPEEDUP = 1.1  # bf16 must beat fp32 by this factor to be picked
PROBE_SHAPE = (512, 2048, 576)  # tokens x in x out: a transformer-sized Linear


@dataclass(frozen=True)
class Choice:
    setting: str  # auto | bf16 | fp32
    bf16: bool
    reason: str


_CHOICES: dict[str, Choice] = {}


def device() -> torch.device:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_model_and_flags() -> tuple[str, tuple[str, ...]]:
    """The CPU's model name and which of ``CPU_FLAGS`` it reports (Linux /proc/cpuinfo; else torch's probes)."""
    import torch

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")),
                 platform.processor() or platform.machine())
    flags_line = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    flags = {f for f in CPU_FLAGS if f in flags_line}
    for flag, probe in (("amx_tile", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported")):
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            flags.add(flag)
    return model, tuple(f for f in CPU_FLAGS if f in flags)


def cpu_flags() -> str:
    """One line for benches and reports: the CPU model and its bf16-relevant flags."""
    model, flags = cpu_model_and_flags()
    return f"{model} [{' '.join(flags) or 'no AVX2/AVX-512/AMX flags'}]"


def _probe_file() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "ift-select" / "precision.json"


def measure_bf16_speedup(repeats: int = 3) -> float:
    """fp32 time / bf16-autocast time of a Linear on this CPU (the best of ``repeats``; > 1: bf16 is faster)."""
    import torch

    n, k, m = PROBE_SHAPE
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(k, m), torch.randn(n, k)

    def best(bf16: bool) -> float:
        times = []
        with torch.inference_mode():
            for _ in range(repeats + 1):  # the first run warms up
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    layer(x)
                times.append(time.perf_counter() - start)
        return min(times[1:])

    fp32, bf16 = best(False), best(True)
    return fp32 / bf16


def probed(model: str, flags: tuple[str, ...], measure: Callable[[], float] = measure_bf16_speedup) -> float:
    """The measured bf16 speed-up for this CPU and torch version, from the per-machine cache when present."""
    import torch

    key = hashlib.sha256(json.dumps([model, flags, torch.__version__]).encode()).hexdigest()[:16]
    path = _probe_file()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return float(known[key]["speedup"])
    speedup = measure()
    known[key] = {"cpu": model, "flags": list(flags), "torch": torch.__version__, "speedup": round(speedup, 3)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return speedup


def cpu_choice(model: str, flags: tuple[str, ...], measure: Callable[[], float] = measure_bf16_speedup) -> Choice:
    """``auto`` on a CPU: bf16 with AMX; fp32 without AVX-512 BF16; otherwise whichever the probe found faster."""
    if "amx_tile" in flags:
        return Choice("auto", True, "AMX")
    if "avx512_bf16" not in flags:
        return Choice("auto", False, "no AMX nor AVX-512 BF16")
    speedup = probed(model, flags, measure)
    return Choice("auto", speedup >= SPEEDUP, f"AVX-512 BF16 without AMX: bf16 measured {speedup:.2f}x fp32's speed")


@functools.lru_cache(maxsize=1)
def _auto() -> Choice:
    import torch

    if torch.cuda.is_available():
        return Choice("auto", torch.cuda.is_bf16_supported(), "CUDA")
    return cpu_choice(*cpu_model_and_flags())


def choose(precision: str) -> Choice:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not one of {', '.join(map(repr, PRECISIONS))}")
    choice = _auto() if precision == "auto" else Choice(precision, precision == "bf16", "set")
    _CHOICES[precision] = choice
    return choice


def use_bf16(precision: str) -> bool:
    return choose(precision).bf16


def choices() -> dict[str, dict[str, object]]:
    """What each precision setting used in this process resolved to, for the stage's metrics."""
    return {setting: {"picked": "bf16" if c.bf16 else "fp32", "reason": c.reason, "cpu": cpu_flags()}
            for setting, c in _CHOICES.items()} if _CHOICES else {}


@contextlib.contextmanager
def autocast(precision: str) -> Iterator[None]:
    """bf16 autocast on the current device when ``precision`` allows it; a no-op otherwise."""
    import torch

    if use_bf16(precision):
        with torch.autocast(device().type, dtype=torch.bfloat16):
            yield
    else:
        yield

