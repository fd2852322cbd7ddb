"""Device and precision choice: CUDA when present, bf16 where the hardware supports it, else fp32."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ift_select.core.errors import ConfigError


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_supported() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((probe and probe()) or (amx and amx()))


def use_bf16(precision: str) -> bool:
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if precision == "auto":
        return bf16_supported()
    raise ConfigError(f"precision: {precision!r} is not one of 'auto', 'bf16', 'fp32'")


@contextlib.contextmanager
def autocast(precision: str) -> Iterator[None]:
    """bf16 autocast on the current device when ``precision`` allows it; a no-op otherwise."""
    if use_bf16(precision):
        with torch.autocast(device().type, dtype=torch.bfloat16):
            yield
    else:
        yield
