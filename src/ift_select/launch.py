"""Run training with plain ``python`` or under ``accelerate launch`` (DDP, FSDP, DeepSpeed), chosen in params.

    python -m ift_select.launch train --selection data/selected/full.parquet --base models/base --out models/full
    # params.yaml train.launcher: accelerate  ->  re-runs itself as
    # python -m accelerate.commands.launch --config_file configs/accelerate/<cfg>.yaml .../ift_select/launch.py train ...

A stage script does the same for itself with ``relaunch_if_needed(__file__, sys.argv[1:])`` first:
under ``launcher: accelerate`` the parent process runs the script again under ``accelerate launch`` and exits
with its status; the relaunched processes (marked by ``IFT_SELECT_LAUNCHED``) run the work.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ift_select.config import TrainParams
from ift_select.errors import ConfigError, IftSelectError
from ift_select.paths import repo_root

MARKER = "IFT_SELECT_LAUNCHED"


def accelerate_config(params: TrainParams) -> Path:
    """``train.accelerate_config`` relative to the working directory, else to the repository root."""
    for candidate in (Path(params.accelerate_config), repo_root() / params.accelerate_config):
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"train.accelerate_config: {params.accelerate_config} not found "
                      "(ready configs: configs/accelerate/{cpu,single_gpu,multi_gpu_ddp,fsdp,deepspeed_zero3}.yaml)")


def build_command(target: list[str], params: TrainParams) -> list[str]:
    """The command running ``target`` (``[script, *args]`` or ``["-m", module, *args]``) with the chosen launcher."""
    if params.launcher == "python":
        return [sys.executable, *target]
    if params.launcher == "accelerate":
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config(params)),
                *target]
    raise ConfigError(f"train.launcher: {params.launcher!r} is not one of 'python', 'accelerate'")


def launched() -> bool:
    """True inside a process started by :func:`relaunch_if_needed` (or by ``accelerate launch`` directly)."""
    return bool(os.environ.get(MARKER) or os.environ.get("ACCELERATE_MIXED_PRECISION") or os.environ.get("LOCAL_RANK"))


def relaunch_if_needed(script: str, args: Sequence[str], params: TrainParams | None = None) -> None:
    """Under ``train.launcher: accelerate``, run ``script args...`` under ``accelerate launch`` and exit with its
    status. Returns at once under ``launcher: python`` or inside a launched process. ``params`` defaults to
    the ``train`` section of ./params.yaml."""
    if params is None:
        from ift_select.config import load_params

        params = load_params().train
    if params.launcher == "python" or launched():
        return
    command = build_command([script, *args], params)
    print("launch: " + " ".join(command), file=sys.stderr, flush=True)
    sys.exit(subprocess.run(command, env={**os.environ, MARKER: "1"}).returncode)


def _train(args: argparse.Namespace, argv: list[str]) -> None:
    import pandas as pd

    from ift_select.cli_util import emit
    from ift_select.config import load_params
    from ift_select.training import train

    try:
        params = load_params(args.params)
        relaunch_if_needed(__file__, argv, params.train)
        from accelerate import PartialState

        metrics = train(pd.read_parquet(args.selection), args.base, Path(args.out), params.train, params.train.seed)
    except IftSelectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    if PartialState().is_main_process:
        emit({k: v for k, v in metrics.items() if k != "losses"})


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m ift_select.launch", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="fine-tune a base model on a selection (parquet)")
    train.add_argument("--params", default="params.yaml")
    train.add_argument("--selection", required=True)
    train.add_argument("--base", required=True, help="base model directory")
    train.add_argument("--out", required=True, help="output model directory")
    args = parser.parse_args(argv)
    if args.command == "train":
        _train(args, argv)


if __name__ == "__main__":
    main()
