"""Run a stage with plain ``python`` or under ``accelerate launch`` (DDP, FSDP, DeepSpeed), chosen in params.

Under ``train.launcher: accelerate`` the train stage, however it was started (``python stages/train.py full``,
``ift-select stage train full``), runs itself again as

    python -m accelerate.commands.launch --config_file configs/accelerate/<cfg>.yaml -m ift_select.core.stage train full

and exits with its status: the same entry path (``ift_select.core.stage``) in every process. The relaunched
processes are marked by ``IFT_SELECT_LAUNCHED`` (and accelerate's own variables), so they do the work.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ift_select.core.errors import ConfigError
from ift_select.core.params import TrainParams
from ift_select.core.paths import repo_root

MARKER = "IFT_SELECT_LAUNCHED"
ENTRY = "ift_select.core.stage"


def accelerate_config(params: TrainParams) -> Path:
    """``train.accelerate_config`` relative to the working directory, else to the repository root."""
    for candidate in (Path(params.accelerate_config), repo_root() / params.accelerate_config):
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"train.accelerate_config: {params.accelerate_config} not found "
                      "(ready configs: configs/accelerate/{cpu,single_gpu,multi_gpu_ddp,fsdp,deepspeed_zero3}.yaml)")


def build_command(stage: str, key: str, params: TrainParams) -> list[str]:
    """The command that runs stage ``stage`` (with ``key``) through the entry path, with the chosen launcher."""
    target = [stage, *([key] if key else [])]
    if params.launcher == "python":
        return [sys.executable, "-m", ENTRY, *target]
    if params.launcher == "accelerate":
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config(params)),
                "-m", ENTRY, *target]
    raise ConfigError(f"train.launcher: {params.launcher!r} is not one of 'python', 'accelerate'")


def launched() -> bool:
    """True inside a process started by :func:`relaunch_if_needed` (or by ``accelerate launch`` directly)."""
    return bool(os.environ.get(MARKER) or os.environ.get("ACCELERATE_MIXED_PRECISION") or os.environ.get("LOCAL_RANK"))


def relaunch_if_needed(stage: str, key: str, params: TrainParams) -> None:
    """Under ``train.launcher: accelerate``, run the stage under ``accelerate launch`` and exit with its status.
    Returns at once under ``launcher: python`` or inside a launched process."""
    if params.launcher == "python" or launched():
        return
    command = build_command(stage, key, params)
    print("launch: " + " ".join(command), file=sys.stderr, flush=True)
    sys.exit(subprocess.run(command, env={**os.environ, MARKER: "1"}).returncode)
