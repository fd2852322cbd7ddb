"""Supervised fine-tuning on an Alpaca-format selection: a plain loop over ``accelerate.Accelerator``.

The same code runs as ``python ...`` on a CPU and under ``accelerate launch`` (DDP, FSDP, DeepSpeed): every
process builds the same deterministic batch plan from the seed and takes its share of each step, so a rerun
after a kill resumes at the last checkpoint with the same data order. Loss is on response tokens only
(prompt and padding labels are -100) and is normalised by the response tokens of the whole optimizer step
(across gradient accumulation and processes), so grouping batches by length does not re-weight rows.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ift_select.core.params import TrainParams
from ift_select.core.devices import use_bf16
from ift_select.core.errors import ConfigError, DataError
from ift_select.training.prompting import load_tokenizer

from ift_select.training.batching import collate, encode_rows, label_count, microbatch_plan, padding_stats, token_loss
from ift_select.training.checkpoints import find_checkpoint, run_fingerprint, save_checkpoint, save_output

MAX_GRAD_NORM = 1.0  # the HF Trainer default the Alpaca recipe used


def _validate(params: TrainParams) -> None:
    import importlib.util

    from transformers import SchedulerType

    if min(params.batch_size, params.grad_accum) < 1 or params.max_length < 2 or params.epochs <= 0:
        raise ConfigError("train.batch_size, train.grad_accum and train.epochs must be positive, train.max_length >= 2")
    if params.scheduler not in {s.value for s in SchedulerType}:
        raise ConfigError(f"train.scheduler: {params.scheduler!r} is not a transformers schedule (cosine, linear, ...)")
    if params.lora.enabled and params.lora.qlora and (
            importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available()):
        raise ConfigError("train.lora.qlora: QLoRA needs CUDA and the bitsandbytes package; "
                          "set train.lora.qlora: false (plain LoRA) on this machine")


def _load_model(base_dir: str, params: TrainParams, local_index: int) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if params.lora.enabled and params.lora.qlora:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": local_index}
    model = AutoModelForCausalLM.from_pretrained(base_dir, **kwargs)
    if params.lora.enabled:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if params.lora.qlora:
            model = prepare_model_for_kbit_training(model)
        lora = params.lora
        model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                 target_modules=list(lora.target_modules), task_type="CAUSAL_LM"))
    return model


def make_optimizer(model: Any, params: TrainParams) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name or name.endswith("bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": params.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=params.lr, fused=fused)  # fused: one kernel, not a pass per tensor


def train(selection: pd.DataFrame, base_dir: str, out_dir: Path, params: TrainParams, seed: int,
          resume_dir: Path | None = None, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Fine-tune ``base_dir`` on ``selection`` (instruction, input, output, id) and write ``out_dir``.

    Checkpoints go to ``resume_dir`` (default ``.<out_dir name>.ckpt`` beside ``out_dir``, outside the DVC
    output) every ``params.checkpoint_steps`` optimizer steps; a rerun with the same data, params, seed and
    process count resumes there. ``on_step(step)`` is called after each optimizer step (progress hooks, tests).
    Returns metrics; ``final_loss`` is the mean loss of the last 10% of steps.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import set_seed
    from tqdm import tqdm
    from transformers import get_scheduler

    started = time.perf_counter()
    _validate(params)
    missing = [c for c in ("instruction", "output", "id") if c not in selection.columns]
    if missing:
        raise DataError(f"training selection: missing column(s) {', '.join(missing)}")
    if selection.empty:
        raise DataError("training selection is empty: nothing to train on (check the select stage's settings)")
    out_dir = Path(out_dir)
    ckpt = Path(resume_dir) if resume_dir else out_dir.parent / f".{out_dir.name}.ckpt"
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    accelerator = Accelerator(mixed_precision="bf16" if use_bf16(params.precision) else "no",
                              gradient_accumulation_steps=params.grad_accum)
    procs, rank, accum = accelerator.num_processes, accelerator.process_index, params.grad_accum
    if accelerator.state.deepspeed_plugin is not None:  # no prepared dataloader to infer it from
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = params.batch_size
    per_step = procs * accum
    set_seed(seed)

    tokenizer = load_tokenizer(base_dir)
    ids, labels = encode_rows(tokenizer, selection, params.max_length)
    keep = [i for i in range(len(ids)) if label_count([i], labels) > 0]
    if not keep:
        raise DataError(f"training selection: no row keeps a response token within train.max_length = "
                        f"{params.max_length} (the prompts alone fill it)")
    lengths = [len(x) for x in ids]
    plan, total = microbatch_plan([lengths[i] for i in keep], params, seed, per_step)
    plan = [[keep[i] for i in b] for b in plan]

    model = _load_model(base_dir, params, accelerator.local_process_index)
    optimizer = make_optimizer(model, params)
    scheduler = get_scheduler(params.scheduler, optimizer, num_warmup_steps=math.ceil(params.warmup_ratio * total),
                              num_training_steps=total)
    model, optimizer = accelerator.prepare(model, optimizer)
    if accelerator.gradient_accumulation_steps != accum:
        raise ConfigError(f"train.grad_accum = {accum}, but the accelerate config sets gradient accumulation to "
                          f"{accelerator.gradient_accumulation_steps}: remove it there (params decide)")
    accelerator.register_for_checkpointing(scheduler)  # stepped once per optimizer step, by us

    fingerprint = run_fingerprint(selection, base_dir, params, seed, procs)
    losses: list[float] = []
    start = 0
    found = find_checkpoint(ckpt, fingerprint)
    if found:
        accelerator.load_state(str(ckpt / found["dir"]))
        start, losses = int(found["step"]), list(found["losses"])
    effective = params.batch_size * per_step
    if accelerator.is_main_process:
        print(f"train: {len(keep)} rows, {total} steps, effective batch {effective} = {params.batch_size} per device"
              f" x {procs} devices x {accum} accumulation" + (f"; resuming at step {start}" if start else ""),
              file=sys.stderr)

    model.train()
    loop_start, run_tokens = time.perf_counter(), 0
    bar = tqdm(total=total, initial=start, desc="train", file=sys.stderr, disable=not accelerator.is_main_process)
    for step in range(start, total):
        group = plan[step * per_step:(step + 1) * per_step]
        step_tokens = sum(label_count(b, labels) for b in group)  # same on every process: no communication
        loss_sum = torch.zeros((), device=accelerator.device)
        for j in range(accum):
            batch = {k: v.to(accelerator.device) for k, v in collate(group[j * procs + rank], ids, labels,
                                                                      tokenizer.pad_token_id).items()}
            with accelerator.accumulate(model):
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                summed, _ = token_loss(logits, batch["labels"])
                accelerator.backward(summed * per_step / step_tokens)  # backward divides by accum, DDP by procs
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
                optimizer.step()
                optimizer.zero_grad()
            loss_sum += summed.detach()
        scheduler.step()
        losses.append(float(accelerator.reduce(loss_sum, reduction="sum")) / step_tokens)
        run_tokens += sum(lengths[i] for b in group for i in b)
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if params.checkpoint_steps > 0 and (step + 1) % params.checkpoint_steps == 0 and step + 1 < total:
            save_checkpoint(accelerator, ckpt, step + 1, losses, fingerprint)
        if on_step:
            on_step(step + 1)
    bar.close()
    loop_seconds = time.perf_counter() - loop_start

    save_output(accelerator, model, tokenizer, base_dir, out_dir, params)
    if accelerator.is_main_process:
        shutil.rmtree(ckpt, ignore_errors=True)
    real, slots = padding_stats(plan, lengths)
    tail = losses[-max(1, len(losses) // 10):]
    metrics = {"rows": len(keep), "rows_without_response": len(ids) - len(keep), "steps": total,
               "epochs": params.epochs, "train_loss": float(np.mean(losses)), "final_loss": float(np.mean(tail)),
               "tokens": real, "padding_fraction": round(1 - real / slots, 4), "effective_batch": effective,
               "seconds": round(time.perf_counter() - started, 3),
               "tokens_per_s": round(run_tokens / loop_seconds, 1) if loop_seconds > 0 else None,
               "devices": procs, "device": accelerator.device.type, "distributed": accelerator.distributed_type.value,
               "accelerate_launch": "ACCELERATE_MIXED_PRECISION" in os.environ,
               "mixed_precision": accelerator.mixed_precision,
               "resumed_from_step": start, "losses": [round(x, 5) for x in losses]}
    accelerator.end_training()
    if procs == 1:  # let a later train() in the same process choose its own precision
        AcceleratorState._reset_state()
        GradientState._reset_state()
    return metrics
