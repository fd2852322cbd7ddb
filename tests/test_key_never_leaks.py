"""A recognisable fake API key is used for the requests but found in no file a scoring run writes (outputs,
request cache, batch state), nor in its stdout/stderr, even when the server echoes it back in an error.
(The pipeline-level check of dvc.lock, MLflow and the report extends this.)"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

from fake_openai import FakeOpenAI

MARKER = "LEAKCHECK"


def test_key_is_used_but_never_written(repo_root, tmp_path):
    key = f"sk-test-{MARKER}-{secrets.token_hex(12)}"
    work = tmp_path / "work"
    work.mkdir()
    rows = [f"Explain item {i}." for i in range(6)] + ["Echo [fault:echo]", "Busy [fault:429:1]"]
    (work / "pool.jsonl").write_text("".join(
        json.dumps({"instruction": r, "input": "", "output": "Fine."}) + "\n" for r in rows))
    # the echo row fails for good (1 of 8): allowed here, so the run completes
    (work / "params.yaml").write_text(json.dumps({"pricing": {"gpt-4o-mini": {"input": 0.15, "output": 0.6}},
                                                  "score": {"max_error_rate": 0.25}}))
    env = {**os.environ, "IFT_LEAK_KEY": key, "HF_HUB_OFFLINE": "1", "IFT_SELECT_CACHE_DIR": str(work / "state"),
           "OPENAI_LOG": "debug"}
    srv = FakeOpenAI(retry_after="0", batch_polls=1)
    url = srv.start()
    outputs = []
    try:
        for mode, extra in (("online", []), ("batch", ["--batch-api"])):
            cmd = [sys.executable, "-m", "ift_select.cli", "score", "--input", "pool.jsonl",
                   "--out", f"out/{mode}.parquet", "--backend", "openai", "--base-url", url, "--model", "gpt-4o-mini",
                   "--api-key-env", "IFT_LEAK_KEY", "--max-retries", "1", "--max-cost", "5",
                   "--cache", f"cache/{mode}.sqlite", "--params", "params.yaml",
                   "--prompt", str(repo_root / "prompts" / "alpagasus_rating.txt"), *extra]
            run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
            assert run.returncode == 0, run.stderr[-2000:]
            outputs += [run.stdout, run.stderr]
            summary = json.loads(run.stdout.strip().splitlines()[-1])
            assert summary["rows"] == len(rows) and summary["scored"] >= 6
    finally:
        srv.stop()
    assert f"Bearer {key}" in srv.auth  # the key did reach the server
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite" for p in written) and any(p.name.endswith(".batches.json") for p in written)
    assert any(p.suffix == ".parquet" for p in written)
    for path in written:
        assert MARKER.encode() not in path.read_bytes(), f"the API key leaked into {path}"
    for text in outputs:
        assert MARKER not in text, "the API key leaked into the command's output"
