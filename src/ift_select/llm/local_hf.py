"""In-process transformers backend: batched generation, first-token probabilities of score tokens and, when
asked (``ChatRequest.logprobs``), the most likely alternatives at every generated position.

A prompt longer than ``max_length`` tokens has its cuttable spans shortened from the middle
(``llm.truncate``): the question and the prefill stay, and ``ChatReply.truncated`` counts the tokens cut; one
that cannot fit is an error reply. The cache identity holds what changes replies: the model's content hash
and revision, ``max_length``, the precision ``auto`` resolves to on this machine, and the weights' dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ift_select.core.devices import autocast, device, use_bf16
from ift_select.llm import models as base_models
from ift_select.llm.base import ChatReply, ChatRequest, OnReply
from ift_select.llm.truncate import PromptTooLong, fit

DTYPE = torch.float32  # the weights as loaded; bf16 runs come from autocast (``precision``)


class LocalBackend:
    def __init__(self, model: str, batch_size: int = 8, precision: str = "auto", max_length: int = 1024) -> None:
        self.model_spec = model
        self.name = f"local:{model}"
        self.endpoint = f"local model {model}"
        self.batch_size = batch_size
        self.precision = precision
        self.max_length = max_length
        self._model: Any = None
        self._tokenizer: Any = None
        self._identity: dict[str, Any] | None = None

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = {"backend": "local", "model": self.model_spec,
                              "model_hash": base_models.source_hash(self.model_spec),
                              "revision": base_models.revision(self.model_spec), "max_length": self.max_length,
                              "precision": "bf16" if use_bf16(self.precision) else "fp32",
                              "dtype": str(DTYPE).removeprefix("torch.")}
        return dict(self._identity)

    def load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = base_models.model_dir(self.model_spec)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPE).to(device()).eval()

    def render(self, request: ChatRequest) -> str:
        self.load()
        turns, prefill = request.messages, ""
        if turns and turns[-1][0] == "assistant":  # a trailing assistant turn starts the reply (prefill)
            turns, prefill = turns[:-1], turns[-1][1]
        messages = [{"role": r, "content": c} for r, c in turns]
        if self._tokenizer.chat_template:
            text = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:
            text = "\n\n".join(c for _, c in turns) + "\n\n"
        return text + prefill

    def count(self, request: ChatRequest) -> int:
        text = self.render(request)
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

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
        self.load()
        texts: dict[int, str] = {}
        cut: dict[int, int] = {}
        for i, request in enumerate(requests):
            try:
                fitted, cut[i] = fit(request, self.count, self.max_length)
            except PromptTooLong as exc:
                on_reply(i, ChatReply(text="", status="error", error=f"prompt too long: {exc} (max_length)",
                                      attempts=0))
                continue
            texts[i] = self.render(fitted)
        order = sorted(texts, key=lambda i: (requests[i].max_tokens, requests[i].temperature,
                                             requests[i].score_tokens, len(texts[i])))
        batch: list[int] = []
        for i in order:
            if batch and self._batch_key(requests[batch[0]]) != self._batch_key(requests[i]):
                self._run_batch(batch, requests, texts, cut, on_reply)
                batch = []
            batch.append(i)
            if len(batch) == self.batch_size:
                self._run_batch(batch, requests, texts, cut, on_reply)
                batch = []
        if batch:
            self._run_batch(batch, requests, texts, cut, on_reply)

    @staticmethod
    def _batch_key(r: ChatRequest) -> tuple:
        return (r.max_tokens, r.temperature, r.score_tokens)

    def _alternatives(self, logits: torch.Tensor, k: int) -> dict[str, float]:
        """The ``k`` most likely next tokens as {text: probability} (spellings that decode alike are summed)."""
        probs = torch.softmax(logits.float(), dim=-1)
        top = torch.topk(probs, k)
        out: dict[str, float] = {}
        for p, token_id in zip(top.values.tolist(), top.indices.tolist()):
            text = self._tokenizer.decode([token_id])
            out[text] = out.get(text, 0.0) + p
        return out

    def _positions(self, steps: Sequence[torch.Tensor], row: int, seq: torch.Tensor | None,
                   k: int) -> list[tuple[str, dict[str, float]]]:
        if seq is None:  # no generation (max_tokens 0): the first position, as an endpoint sending 1 token
            first = int(torch.argmax(steps[0][row]))
            return [(self._tokenizer.decode([first]), self._alternatives(steps[0][row], k))]
        out = []
        for step, token_id in zip(steps, seq.tolist()):
            if token_id == self._tokenizer.pad_token_id:
                break
            out.append((self._tokenizer.decode([token_id]), self._alternatives(step[row], k)))
        return out

    @torch.inference_mode()
    def _run_batch(self, batch: list[int], requests: Sequence[ChatRequest], texts: dict[int, str],
                   cut: dict[int, int], on_reply: OnReply) -> None:
        first = requests[batch[0]]
        enc = self._tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device())
        prompt_len = enc["input_ids"].shape[1]
        with autocast(self.precision):
            if first.max_tokens > 0:
                sampling = {"do_sample": True, "temperature": first.temperature} if first.temperature > 0 \
                    else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
                out = self._model.generate(**enc, max_new_tokens=first.max_tokens, output_logits=True,
                                           return_dict_in_generate=True, pad_token_id=self._tokenizer.pad_token_id,
                                           **sampling)
                steps = out.logits
                new_tokens = out.sequences[:, prompt_len:]
            else:
                steps = (self._model(**enc).logits[:, -1, :],)
                new_tokens = None
        probs = torch.softmax(steps[0].float(), dim=-1)
        token_ids = self._score_token_ids(first.score_tokens) if first.score_tokens else {}
        for row, i in enumerate(batch):
            text, n_out = "", 0
            seq = new_tokens[row] if new_tokens is not None else None
            if seq is not None:
                keep = seq != self._tokenizer.pad_token_id
                n_out = int(keep.sum())
                text = self._tokenizer.decode(seq[keep], skip_special_tokens=True).strip()
            token_probs = ({tok: float(probs[row, ids].sum()) if ids else 0.0 for tok, ids in token_ids.items()}
                           if token_ids else None)
            positions = self._positions(steps, row, seq, requests[i].logprobs) if requests[i].logprobs > 0 else None
            n_in = int(enc["attention_mask"][row].sum())
            on_reply(i, ChatReply(text=text, token_probs=token_probs, positions=positions, truncated=cut[i],
                                  tokens_in=n_in, tokens_out=n_out))
