"""Supervised fine-tuning on an Alpaca-format selection: a plain loop over ``accelerate.Accelerator``.

The same code runs as ``python ...`` on a CPU and under ``accelerate launch`` (DDP, FSDP, DeepSpeed): every
process builds the same deterministic batch plan from the seed and takes its share of each step, so a rerun
after a kill resumes at the last checkpoint with the same data order. Loss is on response tokens only
(prompt and padding labels are -100) and is normalised by the response tokens of the whole optimizer step
(across gradient accumulation and processes), so grouping batches by length does not re-weight rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ift_select.core.params import TrainParams
from ift_select.core.devices import use_bf16
from ift_select.core.errors import ConfigError, DataError
from ift_select.core.io import write_json
from ift_select.training.prompting import encode_example, load_tokenizer, pad_sequences

IGNORE = -100
MAX_GRAD_NORM = 1.0  # the HF Trainer default the Alpaca recipe used
MEGABATCH = 50  # batches per length-sorted chunk of the shuffled rows (as HF's LengthGroupedSampler)
Batch = list[int]  # row indices


def encode_rows(tokenizer: Any, frame: pd.DataFrame, max_length: int) -> tuple[list[list[int]], list[list[int]]]:
    pairs = [encode_example(tokenizer, row.instruction, getattr(row, "input", ""), row.output, max_length)
             for row in frame.itertuples(index=False)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plan_batches(lengths: Sequence[int], batch_size: int, seed: int, group_by_length: bool) -> list[Batch]:
    """One epoch of batches. Grouped: shuffle, sort chunks of ``MEGABATCH`` batches by length, cut, shuffle the
    batches; naive: shuffle and cut. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)).tolist()
    if group_by_length:
        chunk = batch_size * MEGABATCH
        order = [i for s in range(0, len(order), chunk)
                 for i in sorted(order[s:s + chunk], key=lambda i: -lengths[i])]
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def padding_stats(batches: Sequence[Batch], lengths: Sequence[int]) -> tuple[int, int]:
    """(real tokens, token slots) when every batch is padded to its longest row."""
    real = sum(lengths[i] for b in batches for i in b)
    slots = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return real, slots


def collate(rows: Batch, ids: Sequence[list[int]], labels: Sequence[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors: padding has attention 0 and label -100."""
    input_ids, mask = pad_sequences([ids[i] for i in rows], pad_id)
    label_ids, _ = pad_sequences([labels[i] for i in rows], IGNORE)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": label_ids}


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(summed next-token cross-entropy over positions whose label is not -100, number of such positions)."""
    shift_logits = logits[:, :-1].float().reshape(-1, logits.size(-1))
    shift_labels = labels[:, 1:].reshape(-1)
    loss = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE, reduction="sum")
    return loss, int((shift_labels != IGNORE).sum())


def _label_count(rows: Batch, labels: Sequence[list[int]]) -> int:
    return sum(sum(1 for t in labels[i][1:] if t != IGNORE) for i in rows)


def microbatch_plan(lengths: Sequence[int], params: TrainParams, seed: int, per_step: int) -> tuple[list[Batch], int]:
    """All micro-batches of the run in order (``per_step`` = processes x grad_accum per optimizer step) and the
    number of optimizer steps. Each epoch's batches wrap around to fill its last step (as DistributedSampler)."""
    first = plan_batches(lengths, params.batch_size, seed, params.group_by_length)
    steps_per_epoch = math.ceil(len(first) / per_step)
    total = max(1, math.ceil(params.epochs * steps_per_epoch))
    plan: list[Batch] = []
    for epoch in range(math.ceil(total / steps_per_epoch)):
        batches = first if epoch == 0 else plan_batches(lengths, params.batch_size, seed + epoch, params.group_by_length)
        plan += [batches[k % len(batches)] for k in range(steps_per_epoch * per_step)]
    return plan[: total * per_step], total


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


def _fingerprint(frame: pd.DataFrame, base_dir: str, params: TrainParams, seed: int, processes: int) -> str:
    """What a checkpoint must match to be resumed: rows, base model files (name, size, mtime), params, seed."""
    base = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(base_dir).glob("*") if p.is_file())
    record = {"ids": hashlib.sha256("\n".join(map(str, frame["id"])).encode()).hexdigest(), "base": [base_dir, base],
              "params": dataclasses.asdict(params), "seed": seed, "processes": processes}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def _save_checkpoint(accelerator: Any, ckpt: Path, step: int, losses: list[float], fingerprint: str) -> None:
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


def _find_checkpoint(ckpt: Path, fingerprint: str) -> dict[str, Any] | None:
    try:
        state = json.loads((ckpt / "latest.json").read_text())
    except (OSError, ValueError):
        return None
    return state if state.get("fingerprint") == fingerprint and (ckpt / state["dir"]).is_dir() else None


def _save_output(accelerator: Any, model: Any, tokenizer: Any, base_dir: str, out_dir: Path, params: TrainParams) -> None:
    """Write ``out_dir`` atomically on the main process: full model, merged LoRA model or LoRA adapter."""
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, params.save_dtype)
    state = accelerator.get_state_dict(model)  # gathers FSDP / ZeRO-3 shards; every process must call it
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
        try:
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
            tmp.chmod(0o755)
            if out_dir.exists():
                shutil.rmtree(out_dir)
            os.replace(tmp, out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()


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
    keep = [i for i in range(len(ids)) if _label_count([i], labels) > 0]
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

    fingerprint = _fingerprint(selection, base_dir, params, seed, procs)
    losses: list[float] = []
    start = 0
    found = _find_checkpoint(ckpt, fingerprint)
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
        step_tokens = sum(_label_count(b, labels) for b in group)  # same on every process: no communication
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
            _save_checkpoint(accelerator, ckpt, step + 1, losses, fingerprint)
        if on_step:
            on_step(step + 1)
    bar.close()
    loop_seconds = time.perf_counter() - loop_start

    _save_output(accelerator, model, tokenizer, base_dir, out_dir, params)
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
