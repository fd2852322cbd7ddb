"""Training state on disk: resumable checkpoints outside the DVC output (matched by a fingerprint of rows,
base model, params, seed and process count) and the atomic write of the trained model directory."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ift_select.core.params import TrainParams
from ift_select.core.io import atomic_dir, write_json


def run_fingerprint(frame: pd.DataFrame, base_dir: str, params: TrainParams, seed: int, processes: int) -> str:
    """What a checkpoint must match to be resumed: rows, base model files (name, size, mtime), params, seed."""
    base = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(base_dir).glob("*") if p.is_file())
    record = {"ids": hashlib.sha256("\n".join(map(str, frame["id"])).encode()).hexdigest(), "base": [base_dir, base],
              "params": dataclasses.asdict(params), "seed": seed, "processes": processes}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def save_checkpoint(accelerator: Any, ckpt: Path, step: int, losses: list[float], fingerprint: str) -> None:
    target = ckpt / f"step-{step}"
    accelerator.save_state(str(target))  # model, optimizer, scheduler, RNG states of every process
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(ckpt / "latest.json", {"step": step, "dir": target.name, "losses": losses,
                                          "fingerprint": fingerprint})
        for old in ckpt.glob("step-*"):
            if old.name != target.name:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def find_checkpoint(ckpt: Path, fingerprint: str) -> dict[str, Any] | None:
    try:
        state = json.loads((ckpt / "latest.json").read_text())
    except (OSError, ValueError):
        return None
    return state if state.get("fingerprint") == fingerprint and (ckpt / state["dir"]).is_dir() else None


def save_output(accelerator: Any, model: Any, tokenizer: Any, base_dir: str, out_dir: Path, params: TrainParams) -> None:
    """Write ``out_dir`` atomically on the main process: full model, merged LoRA model or LoRA adapter."""
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, params.save_dtype)
    state = accelerator.get_state_dict(model)  # gathers FSDP / ZeRO-3 shards; every process must call it
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        with atomic_dir(out_dir) as tmp:
            if params.lora.enabled:
                adapter = tmp if not params.lora.merge else tmp / "_adapter"
                unwrapped.save_pretrained(adapter, state_dict=state)  # keeps the adapter weights only
                if params.lora.merge:  # merge into a fresh full-precision base: the same on every launcher
                    from peft import PeftModel

                    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
                    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
                    merged.to(dtype).save_pretrained(tmp)
                    shutil.rmtree(adapter)
            else:
                unwrapped.save_pretrained(tmp, state_dict={k: v.to(dtype) for k, v in state.items()})
                unwrapped.config.dtype = params.save_dtype  # save_pretrained records the live (fp32) dtype
                unwrapped.config.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    accelerator.wait_for_everyone()
