"""One tiny pipeline repository, run once per test session and shared by the audit and reliability tests
(test_tracking, test_lineage, test_reliability, test_key_never_leaks_pipeline). Destructive tests work on a
``cp -a`` copy. The run is made with a recognisable fake API key in the environment, and its dvc.lock,
metrics and reports are committed (as a user would), so ``dvc exp run --temp/--queue`` reruns only what an
experiment changes."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fake_openai import FakeOpenAI
from pipeline_repo import GITIGNORE, commit_all, copy_repo, make_repo, pipeline_env, run, tiny_params  # noqa: F401

FAKE_KEY = f"sk-test-AUDITLEAK-{secrets.token_hex(12)}"
KEY_ENV = "IFT_AUDIT_API_KEY"
ARMS = ("alpagasus", "full")
PAIR = "alpagasus_vs_full"
_STATE: dict[str, object] = {}


class AuditServer(FakeOpenAI):
    """The fake API, answering pairwise judge prompts as the AlpaGasus judge prompt asks ("<a> <b>\n..."),
    with scores that depend only on the request, so every judged item is complete and WS is a number."""

    def completion(self, body: dict[str, Any], *args: Any, **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
        status, reply, headers = super().completion(body, *args, **kwargs)
        if status == 200 and isinstance(reply, dict) and "Assistant 2" in json.dumps(body.get("messages")):
            digest = int(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(), 16)
            reply["choices"][0]["message"]["content"] = (f"{1 + digest % 10} {1 + digest // 10 % 10}\n"
                                                         "Both answers were compared.")
            reply["choices"][0].pop("logprobs", None)
        return status, reply, headers


def server() -> FakeOpenAI:
    """The session's loopback OpenAI-compatible server: the grader and the judge of the audit repository."""
    if "server" not in _STATE:
        srv = AuditServer(latency=0.02)
        _STATE["url"] = srv.start()
        _STATE["server"] = srv
    return _STATE["server"]  # type: ignore[return-value]


def audit_params(base_url: str) -> dict:
    """The tiny configuration, with two arms and one judged pair (half the stages of four arms), and the
    grader and judge behind an OpenAI-compatible endpoint priced like gpt-4o-mini, keyed by FAKE_KEY."""
    params = tiny_params()
    params["arms"] = {k: v for k, v in params["arms"].items() if k in ARMS}
    params["judge"]["pairs"] = {PAIR: {"a": "alpagasus", "b": "full"}}
    api = {"base_url": base_url, "api_key_env": KEY_ENV, "concurrency": 4, "max_retries": 2}
    params["score"].update(backend="openai", model="gpt-4o-mini", prompt="prompts/alpagasus_rating.txt")
    params["score"]["openai"].update(api)
    params["judge"].update(backend="openai", model="gpt-4o-mini", prompt="prompts/judge_pair_score.txt",
                           max_new_tokens=24)
    params["judge"]["openai"].update(api)
    params["train"]["checkpoint_steps"] = 2  # so that a killed training run has a checkpoint to resume
    return params


def env(root: Path, **extra: str) -> dict:
    out = pipeline_env(root)
    out.update({KEY_ENV: FAKE_KEY, "OPENAI_API_KEY": FAKE_KEY, **extra})
    return out


def dvc(root: Path, *args: str, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], root, env(root, **extra_env), check=check)


def git(root: Path, *args: str) -> str:
    return run(["git", *args], root, env(root)).stdout


def baseline(tmp_path_factory) -> tuple[Path, str]:
    """(repository root, output of its `dvc repro`), made once per session."""
    if "root" not in _STATE:
        server()
        base = tmp_path_factory.mktemp("audit")
        root = base / "repo"
        root.mkdir()
        make_repo(root, audit_params(_STATE["url"]))
        (root / ".gitignore").write_text(GITIGNORE)
        commit_all(root, "ignore local state")
        started = time.perf_counter()
        out = dvc(root, "repro")
        _STATE["seconds"] = round(time.perf_counter() - started, 1)
        log = out.stdout + out.stderr
        (base / "repro.log").write_text(log)
        commit_all(root, "dvc repro")
        _STATE["root"], _STATE["log"] = root, log
    return _STATE["root"], _STATE["log"]  # type: ignore[return-value]


def stage_processes(root: Path, script: str) -> list[int]:
    """Pids of `python stages/<script>` processes whose working directory is ``root``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if any(part.decode(errors="replace").endswith(f"stages/{script}") for part in cmdline) \
                and Path(cwd) == root:
            pids.append(int(proc.name))
    return pids


def kill_stage_when(root: Path, target: str, script: str, ready, timeout: float = 600,
                    args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run `dvc repro <args> <target>`; once ``ready()`` is true while the stage script runs, SIGKILL the
    stage's process (not DVC). Returns DVC's completed process (it fails: the stage was killed)."""
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", *args, target], cwd=root, env=env(root),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    killed = False
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            pids = stage_processes(root, script)
            if pids and ready():
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed, f"the stage never reached the kill point:\n{out[-3000:]}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def cache_rows(root: Path) -> int:
    path = root / ".ift-cache" / "requests.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])
    except sqlite3.Error:
        return 0


def lock_md5(root: Path, stage: str, path: str) -> str:
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return next(o["md5"] for o in lock["stages"][stage]["outs"] if o["path"] == path)


def temp_leftovers(*dirs: Path) -> list[Path]:
    """Files an interrupted write would leave (``ift_select.core.io`` writes ``.<name>.<random><suffix>`` beside
    the target; prepare stages test sets in ``.tests.<random>``): hidden entries other than .gitignore and
    training checkpoints (``.<arm>.ckpt``)."""
    return [p for d in dirs if d.exists() for p in d.iterdir()
            if p.name.startswith(".") and p.name != ".gitignore" and not p.name.endswith(".ckpt")]


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
