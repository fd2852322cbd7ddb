"""The llama.cpp server process, run by ``llm.llamacpp`` as a script: it loads one GGUF, serves llama.cpp's
OpenAI-compatible API on 127.0.0.1 at a port the OS picks when it binds (no race), prints its address on
stdout, and stops when its stdin closes, which happens however the parent ends (even SIGKILL).

    python src/ift_select/llm/llamacpp_server.py '{"model": "m.gguf", "threads": 2, "ctx": 2048}'

Standard library and ``xllamacpp`` only: no torch in this process, so the ``OMP_WAIT_POLICY`` the parent
sets takes effect (torch initialises OpenMP first otherwise, and spinning threads starve each other on a
shared CPU: measured 2.5x slower at load 13 on 2 cores).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def server_params(config: dict[str, Any]) -> Any:
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = config["model"]
    parallel = int(config.get("parallel", 1))
    p.n_parallel = parallel
    p.n_ctx = int(config.get("ctx", 2048)) * parallel  # each slot gets n_ctx / parallel
    p.n_batch, p.n_ubatch = int(config.get("batch", 2048)), int(config.get("ubatch", 512))
    threads = config.get("threads") or len(os.sched_getaffinity(0))
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = int(threads)
    if config.get("chat_template"):
        p.chat_template = config["chat_template"]
    p.hostnames = ["127.0.0.1"]
    p.port = 0
    p.verbosity = int(config.get("verbosity", 1))  # errors and warnings (the parent quotes the first error)
    return p


def main() -> None:
    import xllamacpp

    server = xllamacpp.Server(server_params(json.loads(sys.argv[1])))
    sys.stdout.write(server.listening_address + "\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()
    finally:
        del server


if __name__ == "__main__":
    main()
