"""Read one metadata value from a GGUF file's header without loading it (the ``gguf`` package's reader parses
every tensor first: 11 s for SmolLM2-135M here, against a few milliseconds for this)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from ift_select.core.errors import ConfigError

_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def _read(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize("<" + fmt)
    data = fh.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack("<" + fmt, data)[0]


def _string(fh: BinaryIO) -> bytes:
    return fh.read(_read(fh, "Q"))


def _value(fh: BinaryIO, kind: int, keep: bool) -> Any:
    if kind in _SCALARS:
        return _read(fh, _SCALARS[kind])
    if kind == _STRING:
        raw = _string(fh)
        return raw.decode("utf-8", "replace") if keep else None
    if kind == _ARRAY:
        item, count = _read(fh, "I"), _read(fh, "Q")
        if item in _SCALARS:  # skip fixed-size items at once
            fh.seek(struct.calcsize("<" + _SCALARS[item]) * count, 1)
        else:
            for _ in range(count):
                _value(fh, item, False)
        return None
    raise ValueError(f"unknown GGUF value type {kind}")


def metadata(path: str | Path, key: str) -> Any:
    """The value of metadata ``key`` (e.g. ``tokenizer.chat_template``) in GGUF file ``path``; None if absent."""
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"GGUF":
                raise ConfigError(f"{path}: not a GGUF file (no GGUF magic)")
            _read(fh, "I")  # version
            _read(fh, "Q")  # tensors
            for _ in range(_read(fh, "Q")):
                name = _string(fh).decode("utf-8", "replace")
                value = _value(fh, _read(fh, "I"), keep=name == key)
                if name == key:
                    return value
    except (EOFError, ValueError, struct.error) as exc:
        raise ConfigError(f"{path}: unreadable GGUF header ({exc or 'truncated'})") from exc
    return None
