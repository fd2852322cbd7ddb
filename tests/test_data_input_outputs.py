"""Input handling (issue 14), what the user sees around a load: prepare's summary line, the mode of the files it
writes, and `ift-select data inspect`.

prepare runs as its stage script's ``main`` in a work directory (no DVC, no MLflow).
"""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ift_select.cli import app
from ift_select.core import params as config
from ift_select.data import stage as data_stage
from ift_select.core.params import DataParams, Params
from ift_select.core.errors import IftSelectError
from ift_select.core.io import atomic_dir, current_umask, write_json, write_parquet, write_text, write_with

REPO = Path(__file__).resolve().parents[1]
GOOD = [{"instruction": f"Add {i} and 3.", "input": "", "output": str(i + 3)} for i in range(4)]


def lines(rows: list) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


@pytest.fixture
def umask():
    """Set the process umask for one test (restored after)."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def prepare(root: Path, monkeypatch, on_invalid: str = "error") -> dict:
    """Run the prepare and testset@tiny stage bodies in ``root`` with pool data/in/pool.jsonl and test set
    data/in/tiny.jsonl.gz; returns both stages' metrics."""
    params = Params()
    params.data = DataParams(pool="data/in/pool.jsonl", on_invalid=on_invalid,  # type: ignore[arg-type]
                             test_sets={"tiny": config.TestSetSpec(path="data/in/tiny.jsonl.gz")})
    monkeypatch.chdir(root)
    return {"prepare": data_stage.prepare(params, ""), "testset": data_stage.testset(params, "tiny")}


@pytest.fixture
def inputs(tmp_path) -> Path:
    """A pool with one duplicate and one null output (line 4); a gzipped test set with a blank instruction."""
    (tmp_path / "data" / "in").mkdir(parents=True)
    pool = [GOOD[0], GOOD[1], GOOD[0], dict(GOOD[2], output=None), GOOD[3]]
    (tmp_path / "data/in/pool.jsonl").write_text(lines(pool))
    tests = [{"instruction": "Name a prime.", "input": ""}, {"instruction": "  ", "input": "x"},
             {"instruction": "Say hi.", "input": ""}]
    (tmp_path / "data/in/tiny.jsonl.gz").write_bytes(gzip.compress(lines(tests).encode()))
    return tmp_path


def test_prepare_prints_one_summary_line_with_every_count(inputs, monkeypatch, capsys):
    metrics = prepare(inputs, monkeypatch, on_invalid="skip")
    err = capsys.readouterr().err
    assert err == ("prepare: pool data/in/pool.jsonl: 3 kept, 1 duplicates, 1 skipped (first: line 4: field 'output' "
                   "is null) [every skip: metrics/prepare.json]\n"
                   "testset: test set tiny: 2 kept, 0 duplicates, 1 skipped (first: line 2: field 'instruction' is "
                   "whitespace only) [every skip: metrics/testset_tiny.json]\n")
    tiny = metrics["testset"]["report"]
    assert (tiny["skipped"], tiny["records"]) == (1, 3)
    assert pd.read_parquet(inputs / "data/prepared/tests/tiny.parquet")["instruction"].tolist() == [
        "Name a prime.", "Say hi."]


def test_prepare_validates_test_sets_like_the_pool(inputs, monkeypatch, capsys):
    from ift_select.core.errors import DataError

    (inputs / "data/in/pool.jsonl").write_text(lines(GOOD))
    with pytest.raises(DataError, match=r"^data/in/tiny\.jsonl\.gz:2: field 'instruction' is whitespace only$"):
        prepare(inputs, monkeypatch)
    assert not (inputs / "data/prepared/tests").exists()
    assert "testset" not in capsys.readouterr().err


def test_prepare_summary_without_skips_and_with_max_rows(inputs, monkeypatch, capsys):
    (inputs / "data/in/pool.jsonl").write_text(lines(GOOD))
    (inputs / "data/in/tiny.jsonl.gz").write_bytes(gzip.compress(lines([{"instruction": "Hi?"}]).encode()))
    prepare(inputs, monkeypatch)
    assert capsys.readouterr().err == ("prepare: pool data/in/pool.jsonl: 4 kept, 0 duplicates, 0 skipped\n"
                                       "testset: test set tiny: 1 kept, 0 duplicates, 0 skipped\n")
    params = Params()
    params.data = DataParams(pool="data/in/pool.jsonl", max_rows=2)
    data_stage.prepare(params, "")
    assert capsys.readouterr().err == ("prepare: pool data/in/pool.jsonl: 2 kept, 0 duplicates, 0 skipped, "
                                       "stopped at data.max_rows = 2\n")


# --- file modes --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002], ids=oct)
def test_outputs_get_the_mode_a_plain_open_would(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "m" / "b.json", {"a": 1})
    write_parquet(tmp_path / "c.parquet", pd.DataFrame({"a": [1]}))
    for path in (tmp_path / "a.txt", tmp_path / "m" / "b.json", tmp_path / "c.parquet"):
        assert mode(path) == mode(plain) == 0o666 & ~mask, path
    (tmp_path / "plain_dir").mkdir()
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "f").write_text("x")
    assert mode(tmp_path / "d") == mode(tmp_path / "plain_dir") == 0o777 & ~mask


def test_prepare_outputs_honour_the_umask(inputs, monkeypatch, umask, capsys):
    umask(0o027)
    (inputs / "data/in/pool.jsonl").write_text(lines(GOOD))
    prepare(inputs, monkeypatch, on_invalid="skip")
    out = inputs / "data" / "prepared"
    assert (mode(out / "pool.parquet"), mode(out / "tests"), mode(out / "tests" / "tiny.parquet")) == (
        0o640, 0o750, 0o640)
    assert sorted(p.name for p in out.iterdir()) == ["pool.parquet", "tests"]  # no temporary left


def test_model_directories_honour_the_umask(tmp_path, umask):
    """The base_model stage's directory (llm.models.materialize), written beside its target and swapped in."""
    from ift_select.llm.models import materialize

    umask(0o027)
    materialize("tiny-random-llama", tmp_path / "base")
    assert mode(tmp_path / "base") == 0o750 and mode(tmp_path / "base" / "config.json") == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["base"]  # no temporary left


def test_atomic_dir_failure_keeps_the_old_directory(tmp_path):
    target = tmp_path / "d"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "new").write_text("new")
        raise RuntimeError("writer failed")
    assert [p.name for p in tmp_path.iterdir()] == ["d"] and [p.name for p in target.iterdir()] == ["old"]
    with atomic_dir(target) as tmp:
        (tmp / "new").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["d"] and [p.name for p in target.iterdir()] == ["new"]



def test_an_input_missing_inside_the_block_is_not_called_a_write_error(tmp_path):
    """Only errors about the output's own paths say "cannot write output"; a missing input keeps its own error."""
    missing = tmp_path / "inputs" / "model.bin"
    with pytest.raises(FileNotFoundError, match="model.bin"), atomic_dir(tmp_path / "d") as tmp:
        (tmp / "copy").write_bytes(missing.read_bytes())
    with pytest.raises(FileNotFoundError, match="model.bin"):
        write_with(tmp_path / "out.json", lambda tmp: tmp.write_bytes(missing.read_bytes()))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left behind
    with pytest.raises(IftSelectError, match=r"d: cannot write output"), atomic_dir(tmp_path / "d") as tmp:
        (tmp / "sub" / "file").write_text("no such directory inside the output")

# --- ift-select data inspect -------------------------------------------------------------------------------

def test_inspect_shows_the_wrapper_and_each_skip(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps({"data": [GOOD[0], dict(GOOD[1], instruction=""), None]}, indent=2))
    result = CliRunner().invoke(app, ["data", "inspect", str(path), "--on-invalid", "skip"])
    assert result.exit_code == 0, result.output
    assert "  wrapper:    records read from the list under key 'data'\n" in result.stdout
    assert "    line 8: field 'instruction' is empty\n    line 13 is null, expected an object\n" in result.stdout
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert (last["wrapper_key"], last["kept"], last["skipped"]) == ("data", 1, 2)


def test_inspect_test_set_with_skips(tmp_path):
    path = tmp_path / "tests.jsonl.gz"
    path.write_bytes(gzip.compress(lines([{"instruction": "Hi?"}, {"instruction": None}]).encode()))
    failed = CliRunner().invoke(app, ["data", "inspect", str(path), "--kind", "test"])
    assert failed.exit_code == 1 and failed.stderr == f"error: {path}:2: field 'instruction' is null\n"
    result = CliRunner().invoke(app, ["data", "inspect", str(path), "--kind", "test", "--on-invalid", "skip"])
    assert result.exit_code == 0, result.output
    assert "    line 2: field 'instruction' is null\n" in result.stdout
    assert json.loads(result.stdout.strip().splitlines()[-1])["skipped"] == 1
