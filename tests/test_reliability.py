"""Reliability: bad inputs, atomic writes, read-only and full output directories, SIGKILL during the paid and
long stages, queued experiments.

Bad inputs go through the prepare stage (its real script, in a work directory holding the outputs of an
earlier good run) and through `ift-select data inspect`: each is a one-line error naming file and line (or a
counted skip with data.on_invalid: skip), and a failed run changes no output and leaves no temporary file.
The pipeline parts use the session's tiny pipeline repository (tests/audit_repo.py) and copies of it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from audit_repo import (PAIR, baseline, cache_rows, copy_repo, dvc, git, kill_stage_when, lock_md5, server,
                        temp_leftovers)
from ift_select.cli import app
from ift_select.provenance.dvcrepo import dvc_hash

REPO = Path(__file__).resolve().parents[1]
GOOD = [{"instruction": f"Add {i} and 3.", "input": "", "output": str(i + 3)} for i in range(6)]
TEST_ITEMS = [{"instruction": "Name a prime number.", "input": ""}, {"instruction": "Say hello.", "input": ""}]


def jsonl(rows: list) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode("utf-8")


def csv_bytes(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


BIG = "x" * (1 << 20)

# name: (pool file name, bytes, error "<line>: <regex>" or None when the file is valid, skippable row)
CASES = {
    "malformed_json": ("pool.jsonl", jsonl([GOOD[0], GOOD[1], '{"instruction": "x", "output": ', GOOD[2]]),
                       r"3: malformed JSON", True),
    "wrong_type": ("pool.jsonl", jsonl([GOOD[0], {"instruction": "x", "output": 42}, GOOD[2]]),
                   r"2: field 'output' must be a string, got int 42", True),
    "missing_field": ("pool.jsonl", jsonl([GOOD[0], GOOD[1], GOOD[2], {"instruction": "x", "input": ""}]),
                      r"4: field 'output' is missing", True),
    "empty_file": ("pool.jsonl", b"", r" file is empty", False),
    "latin1_bytes": ("pool.jsonl", jsonl([GOOD[0]]) + '{"instruction": "café", "output": "y"}\n'.encode("latin-1"),
                     r"2: not valid UTF-8 \(byte 0xe9\)", False),
    "json_list_missing_comma": ("pool.json", b'[\n  {"instruction": "a", "output": "b"}\n  {"instruction": "c", '
                                b'"output": "d"}\n]\n', r"3: malformed JSON list", False),
    "csv_shifted_column": ("pool.csv", csv_bytes(["instruction,input,output", "Add 1 and 3.,,4",
                                                  "Add 2 and 3.,,extra,5", "Add 3 and 3.,,6"]),
                           r"3: row has 4 fields, the header has 3", True),
}
VALID = {
    "utf8_bom": ("pool.jsonl", b"\xef\xbb\xbf" + jsonl(GOOD)),
    "one_megabyte_row": ("pool.jsonl", jsonl([GOOD[0], {"instruction": "Repeat x.", "input": "", "output": BIG},
                                              GOOD[1]])),
    "duplicate_rows": ("pool.jsonl", jsonl([GOOD[0], GOOD[1], GOOD[0], GOOD[0], dict(GOOD[1], input="")])),
}


# --- a prepare work directory with the outputs of a good run ----------------------------------------------

def _params(pool: str, on_invalid: str = "error", store: str = "") -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(pool=pool, on_invalid=on_invalid,
                          test_sets={"tiny": {"path": "data/in/test.jsonl", "format": "auto"}})
    params["mlflow"]["tracking_uri"] = store or None
    return params


@pytest.fixture(scope="module")
def good_workdir(tmp_path_factory):
    """stages/prepare.py + params.yaml + inputs, after one good prepare run (outputs in data/prepared)."""
    root = tmp_path_factory.mktemp("prepare") / "work"
    (root / "stages").mkdir(parents=True)
    for script in ("prepare.py", "testset.py"):
        shutil.copy2(REPO / "stages" / script, root / "stages" / script)
    (root / "data" / "in").mkdir(parents=True)
    (root / "data/in/pool.jsonl").write_bytes(jsonl(GOOD))
    (root / "data/in/test.jsonl").write_bytes(jsonl(TEST_ITEMS))
    store = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    (root / "params.yaml").write_text(yaml.safe_dump(_params("data/in/pool.jsonl", store=store)))
    code, _ = run_prepare(root)
    assert code == 0 and (root / "data/prepared/pool.parquet").exists()
    assert run_prepare(root, "testset.py", "tiny")[0] == 0
    return root


def run_prepare(root: Path, script: str = "prepare.py", *args: str) -> tuple[int, str]:
    """A stage script, in-process (as `python stages/<script> <args>` in ``root``): (exit code, stderr)."""
    import io

    err = io.StringIO()
    cwd, argv = Path.cwd(), sys.argv
    os.chdir(root)
    sys.argv = [script, *args]
    try:
        with contextlib.redirect_stderr(err):
            runpy.run_path(str(root / "stages" / script), run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        os.chdir(cwd)
        sys.argv = argv
    return code, err.getvalue()


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): dvc_hash(p) for d in ("data/prepared", "metrics")
            for p in sorted((root / d).rglob("*")) if p.is_file()}


@pytest.fixture
def workdir(good_workdir, tmp_path):
    return copy_repo(good_workdir, tmp_path / "work")


def set_pool(root: Path, name: str, data: bytes, on_invalid: str = "error") -> str:
    path = f"data/in/{name}"
    (root / path).write_bytes(data)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"].update(pool=path, on_invalid=on_invalid)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return path


def inspect(path: Path, *args: str):
    return CliRunner().invoke(app, ["data", "inspect", str(path), *args])


# --- bad inputs ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_error_and_leaves_outputs_untouched(workdir, case):
    name, data, expected, _ = CASES[case]
    before = snapshot(workdir)
    path = set_pool(workdir, name, data)
    code, stderr = run_prepare(workdir)
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert re.match(rf"error: stage prepare: {re.escape(path)}:{expected}", lines[0]), lines[0]
    assert snapshot(workdir) == before, "a failed prepare changed an output"
    assert not temp_leftovers(workdir / "data/prepared", workdir / "metrics")

    result = inspect(workdir / path)
    assert result.exit_code == 1
    assert re.search(rf"{re.escape(str(workdir / path))}:{expected}", result.output), result.output


@pytest.mark.parametrize("case", sorted(c for c, spec in CASES.items() if spec[3]))
def test_bad_row_is_a_counted_skip_when_configured(workdir, case):
    name, data, expected, _ = CASES[case]
    line = int(expected.split(":")[0])
    path = set_pool(workdir, name, data, on_invalid="skip")
    code, stderr = run_prepare(workdir)
    assert code == 0, stderr
    report = json.loads((workdir / "metrics/prepare.json").read_text())["pool"]
    assert report["skipped"] == 1 and report["skipped_reasons"][0]["line"] == line
    pool = pd.read_parquet(workdir / "data/prepared/pool.parquet")
    assert len(pool) == report["kept"] == report["records"] - 1
    assert line not in set(pool["source_line"])

    result = inspect(workdir / path, "--on-invalid", "skip")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["skipped"] == 1 and summary["skipped_reasons"][0]["line"] == line


def test_file_level_problems_are_errors_even_when_skipping(workdir):
    for case in ("empty_file", "latin1_bytes", "json_list_missing_comma"):
        name, data, expected, _ = CASES[case]
        path = set_pool(workdir, name, data, on_invalid="skip")
        code, stderr = run_prepare(workdir)
        assert code == 1 and re.search(rf"{re.escape(path)}:{expected}", stderr), (case, stderr)


@pytest.mark.parametrize("case", sorted(VALID))
def test_valid_edge_cases_load_exactly(workdir, case):
    name, data = VALID[case]
    path = set_pool(workdir, name, data)
    code, stderr = run_prepare(workdir)
    assert code == 0, stderr
    pool = pd.read_parquet(workdir / "data/prepared/pool.parquet")
    report = json.loads((workdir / "metrics/prepare.json").read_text())["pool"]
    if case == "utf8_bom":
        plain = set_pool(workdir, "plain.jsonl", jsonl(GOOD))
        assert run_prepare(workdir)[0] == 0
        assert pool["id"].tolist() == pd.read_parquet(workdir / "data/prepared/pool.parquet")["id"].tolist()
        assert pool["instruction"].iloc[0] == GOOD[0]["instruction"] and plain != path
    elif case == "one_megabyte_row":
        assert len(pool) == 3 and pool["output"].str.len().max() == len(BIG)
    else:
        assert len(pool) == 2 and report["duplicates"] == 3 and report["kept"] == 2
    result = inspect(workdir / path)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["kept"] == len(pool)


def test_bad_test_set_names_its_file_and_line(workdir):
    before = snapshot(workdir)
    (workdir / "data/in/test.jsonl").write_bytes(jsonl([TEST_ITEMS[0], "{not json"]))
    code, stderr = run_prepare(workdir, "testset.py", "tiny")
    assert code == 1 and re.search(r"data/in/test\.jsonl:2: malformed JSON", stderr), stderr
    assert snapshot(workdir) == before and not temp_leftovers(workdir / "data/prepared")
    result = inspect(workdir / "data/in/test.jsonl", "--kind", "test")
    assert result.exit_code == 1 and "test.jsonl:2: malformed JSON" in result.output


# --- atomic writes ----------------------------------------------------------------------------------------

WRITER = """
import sys, time
from pathlib import Path
from ift_select.core.io import write_with

def slow(tmp: Path) -> None:
    with open(tmp, "wb") as fh:
        fh.write(b"N" * 500_000)
        fh.flush()
        print("WRITING", flush=True)
        time.sleep(60)
        fh.write(b"N" * 500_000)

write_with(sys.argv[1], slow)
"""


def test_kill_during_a_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "out" / "scores.parquet"
    target.parent.mkdir()
    target.write_bytes(b"OLD CONTENT")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.read_bytes() == b"OLD CONTENT"
    # SIGKILL cannot clean up: the half-written temp file is beside the target, never at its name.
    leftovers = temp_leftovers(target.parent)
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".scores.parquet.")


def test_failed_writes_leave_the_old_file_and_no_temp_file(tmp_path):
    from ift_select.core.errors import IftSelectError
    from ift_select.core.io import write_json, write_parquet, write_with

    target = tmp_path / "selected.parquet"
    write_parquet(target, pd.DataFrame({"id": ["a", "b"]}))
    before = target.read_bytes()

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise RuntimeError("writer failed halfway")

    with pytest.raises(RuntimeError):
        write_with(target, broken)
    with pytest.raises(Exception):  # pyarrow cannot convert a column mixing types
        write_parquet(target, pd.DataFrame({"id": ["a", 1, object()]}))
    assert target.read_bytes() == before and not temp_leftovers(tmp_path)
    (tmp_path / "metrics.json").mkdir()  # the rename fails: the target is a directory
    with pytest.raises(IftSelectError, match=r"metrics\.json: cannot write output \(Is a directory\)"):
        write_json(tmp_path / "metrics.json", {"a": 1})
    assert not temp_leftovers(tmp_path)


# --- read-only and full output directories ---------------------------------------------------------------

def _prepare_subprocess(root: Path, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "stages/prepare.py"], cwd=root, capture_output=True, text=True,
                          preexec_fn=preexec, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _can(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True).returncode == 0
    except OSError:
        return False


@contextlib.contextmanager
def read_only(path: Path):
    """Make ``path`` read-only even for root: `chattr +i` (root), else chmod (other users)."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield "chmod 555"
        finally:
            path.chmod(0o755)
        return
    if not _can(["chattr", "+i", str(path)]):
        pytest.skip(f"running as root and `chattr +i {path}` is not supported here")
    try:
        yield "chattr +i"
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_read_only_output_directory_is_a_clear_error(workdir):
    before = snapshot(workdir)
    set_pool(workdir, "pool2.jsonl", jsonl(GOOD[:4]))  # a change, so that prepare has something new to write
    with read_only(workdir / "data/prepared"):
        proc = _prepare_subprocess(workdir)
    assert proc.returncode == 1
    assert re.fullmatch(r"error: stage prepare: data/prepared/pool\.parquet: cannot write output "
                        r"\((Operation not permitted|Permission denied)\)", proc.stderr.strip()), proc.stderr
    assert snapshot(workdir) == before and not temp_leftovers(workdir / "data/prepared", workdir / "metrics")


def _rlimit_fsize():
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_full_output_directory_is_a_clear_error(workdir):
    """A full disk: a 256 KiB tmpfs over data/prepared, filled up (root); else a file-size limit (EFBIG)."""
    before = snapshot(workdir)
    noise = [base64.b64encode(os.urandom(15_000)).decode() for _ in GOOD]  # incompressible: > 4 KiB in Parquet
    set_pool(workdir, "pool2.jsonl", jsonl([dict(g, output=n) for g, n in zip(GOOD, noise)]))
    prepared = workdir / "data/prepared"
    saved = workdir.parent / "saved_prepared"
    shutil.copytree(prepared, saved)
    mounted = os.geteuid() == 0 and _can(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(prepared)])
    try:
        if mounted:
            shutil.copytree(saved, prepared, dirs_exist_ok=True)
            with contextlib.suppress(OSError), open(prepared / ".filler", "wb") as fh:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
            proc = _prepare_subprocess(workdir)
            (prepared / ".filler").unlink()
            expected = "No space left on device"
        else:
            proc = _prepare_subprocess(workdir, preexec=_rlimit_fsize)
            expected = "File too large"
        assert proc.returncode == 1
        assert re.fullmatch(rf"error: stage prepare: data/prepared/pool\.parquet: cannot write output "
                            rf"\(.*{expected}\)", proc.stderr.strip()), proc.stderr
        assert snapshot(workdir) == before and not temp_leftovers(prepared, workdir / "metrics")
    finally:
        if mounted:
            subprocess.run(["umount", str(prepared)], check=True)


# --- the tiny pipeline (tests/audit_repo.py): a bad input under DVC, kills, queued experiments ----------

@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root, _ = baseline(tmp_path_factory)
    return root


def _copy(pipeline, tmp_path) -> Path:
    return copy_repo(pipeline, tmp_path / "repo")


def _metrics(root: Path, stage: str) -> dict:
    return json.loads((root / f"metrics/{stage}.json").read_text())


@pytest.mark.slow
def test_bad_input_under_dvc_repro_changes_nothing_recorded(pipeline, tmp_path):
    """Through DVC: the stage fails with the one-line cause, dvc.lock keeps the last good run, no output is
    ever half-written (DVC removes a stage's outputs before running it; `dvc checkout` restores them)."""
    root = _copy(pipeline, tmp_path)
    lock_before = (root / "dvc.lock").read_bytes()
    good = (root / "data/tiny/pool.jsonl").read_bytes()
    lines = good.decode().splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]  # line 3 cut in half
    (root / "data/tiny/pool.jsonl").write_text("\n".join(lines) + "\n")
    out = dvc(root, "repro", "prepare", check=False)
    assert out.returncode != 0
    assert "error: stage prepare: data/tiny/pool.jsonl:3: malformed JSON" in out.stdout + out.stderr
    assert (root / "dvc.lock").read_bytes() == lock_before
    for path in ("data/prepared/pool.parquet", "metrics/prepare.json"):
        assert not (root / path).exists() or dvc_hash(root / path) == lock_md5(pipeline, "prepare", path)
    assert not temp_leftovers(root / "data/prepared", root / "metrics")
    # back to the last good run: cached outputs from DVC's cache, the git-tracked metrics file from git
    (root / "data/tiny/pool.jsonl").write_bytes(good)
    dvc(root, "checkout", "prepare")
    git(root, "checkout", "--", "metrics/prepare.json")
    pool = "data/prepared/pool.parquet"
    assert dvc_hash(root / pool) == lock_md5(pipeline, "prepare", pool)
    assert "didn't change" in dvc(root, "repro", "prepare").stdout


# --- SIGKILL during score, train, generate and judge -------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("stage,out,requests", [("score", "data/scores/scores.parquet", 36),
                                                (f"judge@{PAIR}", f"data/judgments/{PAIR}.parquet", None)])
def test_sigkill_during_a_paid_stage_resumes_from_the_cache(pipeline, tmp_path, stage, out, requests):
    """Kill the grader/judge halfway (replies partly cached), rerun: only the missing requests are sent,
    and the output equals the uninterrupted run's."""
    root = _copy(pipeline, tmp_path)
    (root / ".ift-cache" / "requests.sqlite").unlink()  # nothing paid yet
    for extra in ("-wal", "-shm"):
        (root / ".ift-cache" / f"requests.sqlite{extra}").unlink(missing_ok=True)
    srv = server()
    srv.latency = 0.4
    start_total = srv.total
    script = "score.py" if stage == "score" else "judge.py"
    try:
        killed = kill_stage_when(root, stage, script, lambda: cache_rows(root) >= 4, args=("-f", "-s"))
        cached = cache_rows(root)
        assert killed.returncode != 0 and not (root / out).exists(), killed.stdout[-2000:]
        total = requests or _metrics(pipeline, f"judge_{PAIR}")["rows"]
        assert 4 <= cached < total, "the kill was not midway"
        sent_before = srv.total
        srv.latency = 0.02
        resumed = dvc(root, "repro", stage)
        assert f"Running stage '{stage}'" in resumed.stdout
    finally:
        srv.latency = 0.02
    name = "score" if stage == "score" else f"judge_{PAIR}"
    figures = _metrics(root, name)
    assert figures["cache_hits"] >= cached and figures["requests"] == figures["rows"] - figures["cache_hits"]
    assert srv.total - sent_before == figures["requests"]
    assert srv.total - start_total <= total + 4  # at most the `concurrency` requests in flight are sent twice
    assert dvc_hash(root / out) == lock_md5(pipeline, stage, out)  # identical to the uninterrupted run


@pytest.mark.slow
def test_sigkill_during_training_resumes_from_the_checkpoint(pipeline, tmp_path):
    root = _copy(pipeline, tmp_path)
    latest = root / "models/.full.ckpt/latest.json"
    killed = kill_stage_when(root, "train@full", "train.py", latest.exists, args=("-f", "-s"))
    assert killed.returncode != 0 and not (root / "models/full").exists()
    step = json.loads(latest.read_text())["step"]
    dvc(root, "repro", "train@full")
    assert _metrics(root, "train_full")["resumed_from_step"] == step > 0
    # identical to the uninterrupted run's: every file, and the lineage record but for the commit it ran at
    before, after = pipeline / "models/full", root / "models/full"
    assert sorted(p.name for p in after.iterdir()) == sorted(p.name for p in before.iterdir())
    for path in before.iterdir():
        if path.name != "lineage.json":
            assert dvc_hash(after / path.name) == dvc_hash(path), path.name
    records = [json.loads((d / "lineage.json").read_text()) for d in (before, after)]
    for record in records:
        record.pop("git_commit")
    assert records[0] == records[1]
    assert not (root / "models/.full.ckpt").exists()


@pytest.mark.slow
def test_sigkill_during_generation_then_rerun_gives_the_same_answers(pipeline, tmp_path):
    root = _copy(pipeline, tmp_path)
    started: list[float] = []

    def midway() -> bool:  # the model is loading or generating
        started.append(time.monotonic())
        return started[-1] - started[0] > 3

    killed = kill_stage_when(root, "generate@full", "generate.py", midway, args=("-f", "-s"))
    assert killed.returncode != 0 and not (root / "data/generations/full.parquet").exists()
    dvc(root, "repro", "generate@full")
    out = "data/generations/full.parquet"
    assert dvc_hash(root / out) == lock_md5(pipeline, "generate@full", out)
