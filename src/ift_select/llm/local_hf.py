"""In-process transformers backend: batched generation plus first-token probabilities of score tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ift_select.llm import models as base_models
from ift_select.core.devices import autocast, device
from ift_select.llm.base import ChatReply, ChatRequest, OnReply


class LocalBackend:
    def __init__(self, model: str, batch_size: int = 8, precision: str = "auto", max_length: int = 1024) -> None:
        self.model_spec = model
        self.name = f"local:{model}"
        self.batch_size = batch_size
        self.precision = precision
        self.max_length = max_length
        self._model: Any = None
        self._tokenizer: Any = None
        self._identity: dict[str, Any] | None = None

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = {"backend": "local", "model": self.model_spec,
                              "model_hash": base_models.source_hash(self.model_spec)}
        return self._identity

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = base_models.model_dir(self.model_spec)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device()).eval()

    def render(self, request: ChatRequest) -> str:
        self._load()
        turns, prefill = request.messages, ""
        if turns and turns[-1][0] == "assistant":  # a trailing assistant turn starts the reply (prefill)
            turns, prefill = turns[:-1], turns[-1][1]
        messages = [{"role": r, "content": c} for r, c in turns]
        if self._tokenizer.chat_template:
            text = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:
            text = "\n\n".join(c for _, c in turns) + "\n\n"
        return text + prefill

    def _score_token_ids(self, tokens: Sequence[str]) -> dict[str, list[int]]:
        """Token ids that spell each score token at the start of a reply ("4" and " 4")."""
        ids: dict[str, list[int]] = {}
        for tok in tokens:
            found = set()
            for variant in (tok, " " + tok):
                enc = self._tokenizer.encode(variant, add_special_tokens=False)
                if len(enc) == 1:
                    found.add(enc[0])
            ids[tok] = sorted(found)
        return ids

    def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply) -> None:
        self._load()
        texts = [self.render(r) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: (requests[i].max_tokens, requests[i].temperature,
                                                            requests[i].score_tokens, len(texts[i])))
        batch: list[int] = []
        for i in order:
            if batch and self._batch_key(requests[batch[0]]) != self._batch_key(requests[i]):
                self._run_batch(batch, requests, texts, on_reply)
                batch = []
            batch.append(i)
            if len(batch) == self.batch_size:
                self._run_batch(batch, requests, texts, on_reply)
                batch = []
        if batch:
            self._run_batch(batch, requests, texts, on_reply)

    @staticmethod
    def _batch_key(r: ChatRequest) -> tuple:
        return (r.max_tokens, r.temperature, r.score_tokens)

    @torch.inference_mode()
    def _run_batch(self, batch: list[int], requests: Sequence[ChatRequest], texts: list[str], on_reply: OnReply) -> None:
        first = requests[batch[0]]
        enc = self._tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, truncation=True,
                              max_length=self.max_length, add_special_tokens=False).to(device())
        prompt_len = enc["input_ids"].shape[1]
        with autocast(self.precision):
            if first.max_tokens > 0:
                sampling = {"do_sample": True, "temperature": first.temperature} if first.temperature > 0 \
                    else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
                out = self._model.generate(**enc, max_new_tokens=first.max_tokens, output_logits=True,
                                           return_dict_in_generate=True, pad_token_id=self._tokenizer.pad_token_id,
                                           **sampling)
                first_logits = out.logits[0]
                new_tokens = out.sequences[:, prompt_len:]
            else:
                first_logits = self._model(**enc).logits[:, -1, :]
                new_tokens = None
        probs = torch.softmax(first_logits.float(), dim=-1)
        token_ids = self._score_token_ids(first.score_tokens) if first.score_tokens else {}
        for row, i in enumerate(batch):
            text, n_out = "", 0
            if new_tokens is not None:
                seq = new_tokens[row]
                keep = seq != self._tokenizer.pad_token_id
                n_out = int(keep.sum())
                text = self._tokenizer.decode(seq[keep], skip_special_tokens=True).strip()
            token_probs = ({tok: float(probs[row, ids].sum()) if ids else 0.0 for tok, ids in token_ids.items()}
                           if token_ids else None)
            n_in = int(enc["attention_mask"][row].sum())
            on_reply(i, ChatReply(text=text, token_probs=token_probs, tokens_in=n_in, tokens_out=n_out))
