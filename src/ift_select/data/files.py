"""Input files as bytes and text: gzip read transparently, encodings checked, the container named by the
extension (looking through a ``.gz`` suffix: ``pool.jsonl.gz`` is JSON Lines).

A file is gunzipped when its first bytes are gzip's magic number, whatever its name; a file named ``.gz``
that is not gzip is an error (it was likely decompressed already and should be renamed).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from ift_select.core.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
              ".parquet": "parquet", ".pq": "parquet"}
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def data_suffix(path: Path) -> str:
    """The extension that names the container, lower-cased: ``.jsonl`` for ``pool.JSONL.gz``."""
    name = path.name.lower()
    return Path(name[:-3]).suffix if name.endswith(".gz") else Path(name).suffix


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when compressed; a missing, corrupt or mis-named file raises DataError."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a data file")
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt gzip file ({exc}); re-download or re-compress it "
                            f"(gzip -t checks a file)") from None
    if path.name.lower().endswith(".gz") and data:
        raise DataError(f"{path}: named .gz but not gzip-compressed; rename it without the .gz")
    return data


def read_text(path: Path) -> str:
    """The file as text: UTF-8, a BOM accepted; invalid bytes, UTF-16, a missing or an empty file raise
    DataError."""
    data = read_bytes(path)
    if data[:2] in _UTF16_BOMS or data[:200].count(0) > len(data[:200]) // 4:
        raise DataError(f"{path}: looks like UTF-16, not UTF-8 (a UTF-16 byte-order mark or NUL bytes "
                        "throughout); re-save the file as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                        "re-save the file as UTF-8") from None
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text


def container_for(path: Path, default: str | None = None) -> str:
    """The container a file's extension names: json | jsonl | csv | parquet (``default`` when unknown, or a
    DataError saying to set data.format when there is none)."""
    container = EXTENSIONS.get(data_suffix(path), default)
    if container is None:
        known = ", ".join(sorted(EXTENSIONS))
        shown = data_suffix(path) or path.suffix or "(none)"
        raise DataError(f"{path}: cannot tell the format from the extension {shown!r} "
                        f"(known: {known}, each also as .gz); set data.format")
    return container
