"""llama.cpp's OpenAI-compatible server on loopback for tests (PyPI wheel ``xllamacpp``), in a child process.

    with LlamaServer(gguf_path, ctx=2048) as server:      # server.base_url = http://127.0.0.1:PORT/v1
        ...

The child runs ``xllamacpp.Server`` (port 0: the OS picks a free port), prints its address and serves until its
stdin closes. A child keeps OpenMP's settings its own (``OMP_WAIT_POLICY=passive``: spinning threads collapse
throughput on a shared 2-core machine) and the model's memory out of the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


class LlamaServer:
    def __init__(self, model: str | Path, ctx: int = 2048, threads: int = 2, timeout_s: float = 180.0) -> None:
        env = {**os.environ, "OMP_WAIT_POLICY": "passive"}
        self._proc = subprocess.Popen([sys.executable, __file__, str(model), str(ctx), str(threads)], env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True)
        line = self._proc.stdout.readline().strip() if self._proc.stdout else ""
        if not line.startswith("http"):
            self.close()
            raise RuntimeError(f"llama.cpp server for {model} did not start (child printed {line!r})")
        self.root = line.rstrip("/")
        self.base_url = self.root + "/v1"
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(self.root + "/health", timeout=5) as reply:
                    if json.loads(reply.read()).get("status") == "ok":
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError(f"llama.cpp server at {self.root} not healthy after {timeout_s:.0f} s")
            time.sleep(0.2)

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(model: str, ctx: int, threads: int) -> None:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model
    params.n_ctx = ctx
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
    params.port = 0
    params.hostnames = ["127.0.0.1"]
    server = xllamacpp.Server(params)
    print(server.listening_address, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    del server


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
