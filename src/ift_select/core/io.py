"""Atomic file output (temp file or directory beside the target, then rename) and content hashes.

Outputs get the mode a plain ``open(path, "w")`` or ``mkdir`` would give under the current umask
(mkstemp/mkdtemp create 0600/0700 whatever the umask).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ift_select.core.errors import IftSelectError

RECORD_KEY = b"ift_select"


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read from /proc where Linux offers it; elsewhere set and restored at once (under
    a lock, with a restrictive value in between, so a file another thread creates meanwhile is private)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def _cannot_write(path: Path, exc: OSError) -> IftSelectError:
    return IftSelectError(f"{path}: cannot write output ({exc.strerror or exc})")


def _about_other_files(exc: OSError, *ours: Path) -> bool:
    """The error names only files outside the output's own paths (an input the block reads): not a write error."""
    names = [Path(os.fsdecode(name)) for name in (exc.filename, exc.filename2) if name is not None]
    return bool(names) and not any(name == own or own in name.parents for name in names for own in ours)


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
        try:
            os.fchmod(fd, 0o666 & ~current_umask())
        except OSError:
            os.unlink(tmp)
            raise
        finally:
            os.close(fd)
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if _about_other_files(exc, tmp_path, path):
            raise
        raise _cannot_write(path, exc) from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path``; only if the block succeeds it takes the place of
    ``path`` (a previous directory there is removed), so readers see the old tree or the new one whole."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        tmp.chmod(0o777 & ~current_umask())
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    old = tmp.with_name(tmp.name + ".old")
    try:
        yield tmp
        if path.exists():
            path.rename(old)
        try:
            tmp.rename(path)
        except OSError:
            if old.exists() and not path.exists():
                old.rename(path)
            raise
    except OSError as exc:
        if _about_other_files(exc, tmp, old, path):
            raise
        raise _cannot_write(path, exc) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_with(path: str | Path, writer: Callable[[Path], Any]) -> None:
    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        writer(tmp)


def write_text(path: str | Path, text: str) -> None:
    write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(path: str | Path, frame: pd.DataFrame, record: dict[str, Any] | None = None) -> None:
    """``frame`` as Parquet; ``record`` (JSON-able) goes into the file's metadata (see :func:`parquet_record`)."""
    if record is None:
        write_with(path, lambda tmp: frame.to_parquet(tmp, index=False))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {**(table.schema.metadata or {}), RECORD_KEY: json.dumps(record, sort_keys=True, default=str).encode()}
    write_with(path, lambda tmp: pq.write_table(table.replace_schema_metadata(meta), tmp))


def parquet_record(path: str | Path) -> dict[str, Any]:
    """The record :func:`write_parquet` stored in a Parquet file's metadata ({} when there is none)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[RECORD_KEY]) if RECORD_KEY in meta else {}


def read_parquet(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise IftSelectError(f"{path}: not found (run the stage that writes it: dvc repro)")
    return pd.read_parquet(path)


def md5_file(path: str | Path) -> str:
    """DVC's file hash (md5 of the bytes)."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def md5_dir(path: str | Path) -> str:
    """A stable digest of a directory: md5 over sorted (relative path, file md5) pairs."""
    path = Path(path)
    digest = hashlib.md5()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{md5_file(file)}\n".encode())
    return digest.hexdigest()


def md5_path(path: str | Path) -> str:
    path = Path(path)
    return md5_dir(path) if path.is_dir() else md5_file(path)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
