"""The pipeline-level key check (tests/test_key_never_leaks.py covers the CLI): the tiny pipeline grades and
judges through a loopback OpenAI-compatible server with a recognisable fake key, which the server receives;
the key then appears nowhere in the repository -- params, dvc.lock, metrics, data, models, reports, the MLflow
store and artifacts, the request cache, DVC's and git's own files -- nor in any log of the runs (DVC's
output, with the openai SDK's debug logging on), also after a `dvc exp run`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from audit_repo import FAKE_KEY, baseline, copy_repo, dvc, server

pytestmark = pytest.mark.slow

NEEDLES = (FAKE_KEY.encode(), FAKE_KEY.rsplit("-", 1)[-1].encode())  # the key, and its random part alone


def leaks_in_file(path: Path) -> list[str]:
    data = path.read_bytes()
    found = [f"{path}: raw bytes"] if any(n in data for n in NEEDLES) else []
    if path.suffix == ".parquet":  # compressed pages: look at the values
        try:
            frame = pd.read_parquet(path)
        except Exception:  # noqa: BLE001 -- not a readable table: the raw check stands
            return found
        text = frame.astype(str).to_csv()
        found += [f"{path}: parquet values"] if any(n.decode() in text for n in NEEDLES) else []
    elif data[:16] == b"SQLite format 3\x00":
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            text = "\n".join(db.iterdump())
        found += [f"{path}: sqlite rows"] if any(n.decode() in text for n in NEEDLES) else []
    return found


def leaks(root: Path) -> list[str]:
    return [hit for path in sorted(root.rglob("*")) if path.is_file() and not path.is_symlink()
            for hit in leaks_in_file(path)]


def test_key_used_by_the_pipeline_but_written_nowhere(tmp_path_factory, tmp_path):
    root, log = baseline(tmp_path_factory)
    srv = server()
    assert f"Bearer {FAKE_KEY}" in srv.auth, "the grader and judge did not use the key"
    assert (root / "mlflow.db").exists() and (root / "dvc.lock").exists() and (root / "reports/report.md").exists()
    assert not any(n.decode() in log for n in NEEDLES)
    assert leaks(root) == []

    # an experiment that pays again (empty cache), with the SDK's debug logging and DVC's verbose output
    copy = copy_repo(root, tmp_path / "repo")
    for name in ("requests.sqlite", "requests.sqlite-wal", "requests.sqlite-shm"):
        (copy / ".ift-cache" / name).unlink(missing_ok=True)
    sent = srv.total
    out = dvc(copy, "exp", "run", "-v", "-S", "report.ci=0.85", OPENAI_LOG="debug")
    assert srv.total > sent, "the experiment sent no request"
    text = out.stdout + out.stderr
    assert not any(n.decode() in text for n in NEEDLES), "the key is in the run's output"
    assert leaks(copy) == []
