"""SIGKILL a scoring run halfway, rerun it: at most `concurrency` requests are sent twice (the server's own
count), and the final scores equal an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
from fake_openai import FakeOpenAI

ROWS = 160
CONCURRENCY = 4


def score_cmd(repo_root, tmp_path, url, cache, out) -> list[str]:
    return [sys.executable, "-m", "ift_select.cli", "score", "--input", str(tmp_path / "pool.jsonl"),
            "--out", str(out), "--backend", "openai", "--base-url", url, "--model", "fake",
            "--concurrency", str(CONCURRENCY), "--cache", str(cache), "--params", str(tmp_path / "params.yaml"),
            "--prompt", str(repo_root / "prompts" / "alpagasus_rating.txt"), "--api-key-env", "IFT_TEST_UNSET_KEY"]


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_sigkill_then_resume(repo_root, tmp_path):
    (tmp_path / "pool.jsonl").write_text("".join(
        json.dumps({"instruction": f"Explain item {i}.", "input": "", "output": f"Item {i} is fine."}) + "\n"
        for i in range(ROWS)))
    (tmp_path / "params.yaml").write_text("{}\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "IFT_SELECT_CACHE_DIR": str(tmp_path / "state")}
    srv = FakeOpenAI(latency=0.05)
    url = srv.start()
    cache = tmp_path / "cache.sqlite"
    try:
        proc = subprocess.Popen(score_cmd(repo_root, tmp_path, url, cache, tmp_path / "killed.parquet"),
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while srv.total < ROWS // 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL and not (tmp_path / "killed.parquet").exists()
        sent_before_kill = srv.total
        assert ROWS // 2 <= sent_before_kill < ROWS

        resumed = subprocess.run(score_cmd(repo_root, tmp_path, url, cache, tmp_path / "resumed.parquet"),
                                 cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        summary = last_json(resumed.stdout)
        twice = sum(n - 1 for n in srv.attempts.values() if n > 1)
        assert twice <= CONCURRENCY and srv.total == ROWS + twice
        assert summary["cache_hits"] >= sent_before_kill - CONCURRENCY and summary["scored"] == ROWS
    finally:
        srv.stop()

    fresh = FakeOpenAI()
    url2 = fresh.start()
    try:
        whole = subprocess.run(score_cmd(repo_root, tmp_path, url2, tmp_path / "fresh.sqlite",
                                         tmp_path / "uninterrupted.parquet"),
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert whole.returncode == 0, whole.stderr[-2000:]
        assert fresh.total == ROWS
    finally:
        fresh.stop()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "resumed.parquet"),
                                  pd.read_parquet(tmp_path / "uninterrupted.parquet"))
