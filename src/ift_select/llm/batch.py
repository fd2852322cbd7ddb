"""OpenAI Batch API mode (``openai.batch_api: true``): for large offline runs at batch prices.

Steps: write the requests as JSONL (``custom_id`` = the request's cache key), upload it (/v1/files), create a
batch (/v1/batches, 24 h window), poll it, download the output and error files and map each line back by
``custom_id``. Replies go through the same reader as the online backend and are priced at batch rates
(``pricing.batch_discount``).

Resumable: each batch is recorded in a sidecar JSON (default ``<cache dir>/openai_batches.json``; the CLI keeps
it beside its cache) under the hash of its request set, with the request ids. A rerun first collects every
recorded batch that holds some of its requests (running, or completed but not yet all cached), and submits
only the rest; lines that failed inside a completed batch are submitted anew.
``max_wait_s`` bounds one run's wait: requests of a batch still running are left unanswered (the runner marks
them "not sent") and the batch id is listed in ``pending``; rerun later to collect them.
Budget: a batch's worst case stays held in the ledger (``llm.ledger``), across runs, until the batch settles
(completed, failed, expired, cancelled, or unknown to the provider). Prompts longer than ``max_prompt_tokens``
are cut as online (a request that cannot fit is answered with an error and not submitted).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import openai

from ift_select.core.io import write_json
from ift_select.llm.base import ChatReply, ChatRequest, OnReply
from ift_select.llm.cache import request_key
from ift_select.core.paths import cache_dir
from ift_select.llm.endpoint import OpenAIEndpoint, error_reply
from ift_select.llm.ledger import Hold
from ift_select.llm.truncate import PromptTooLong

ENDPOINT = "/v1/chat/completions"
FINAL = frozenset({"completed", "failed", "expired", "cancelled"})


class BatchState:
    """The sidecar JSON: {set hash: {batch_id, input_file_id, ids, status, failed_ids, created}}."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = (
            json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {})

    @staticmethod
    def answerable(entry: dict[str, Any]) -> set[str]:
        """Requests this batch holds a reply for, or will (its failed lines are sent anew)."""
        return set(entry["ids"]) - set(entry.get("failed_ids", ()))

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.entries[key] = entry
        write_json(self.path, self.entries)

    def drop(self, key: str) -> None:
        if self.entries.pop(key, None) is not None:
            write_json(self.path, self.entries)


class BatchBackend(OpenAIEndpoint):
    def __init__(self, model: str, state_path: str | Path | None = None, poll_s: float = 30.0,
                 max_wait_s: float | None = None, max_requests: int = 50_000, **settings: Any) -> None:
        super().__init__(model, batch=True, **settings)
        self.state = BatchState(state_path or cache_dir() / "openai_batches.json")
        self.poll_s = poll_s
        self.max_wait_s = max_wait_s
        self.max_requests = max_requests
        self.pending: list[str] = []  # batch ids still running when this run stopped waiting

    def custom_id(self, request: ChatRequest) -> str:
        return request_key(self.identity(), request)[:32]

    def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply) -> None:
        """Collect what earlier runs' batches hold, submit the rest in batches of at most ``max_requests``."""
        by_id: dict[str, list[int]] = {}
        for j, request in enumerate(requests):
            by_id.setdefault(self.custom_id(request), []).append(j)
        todo = {cid: requests[js[0]] for cid, js in by_id.items()}  # identical requests are sent once

        def deliver(replies: dict[str, ChatReply]) -> None:
            for cid, reply in replies.items():
                for j in by_id[cid]:
                    on_reply(j, reply)

        # batch admin calls (upload, create, poll) may use the SDK's own retries: nothing else retries them
        with openai.OpenAI(**{**self.client_options(), "max_retries": self.max_retries}) as client:
            for key, entry in list(self.state.entries.items()):
                mine = {cid: todo.pop(cid) for cid in self.state.answerable(entry) & todo.keys()}
                if mine and self._finish(client, key, entry, mine, Hold(0.0), deliver) is None:
                    todo.update(mine)  # the provider no longer knows this batch: send these anew
            fitted: dict[str, ChatRequest] = {}
            for cid, request in todo.items():
                try:
                    fitted[cid] = self.prepare(request)[0]
                except PromptTooLong as exc:
                    deliver({cid: error_reply(f"prompt too long: {exc}", attempts=0)})
            ids = sorted(fitted)
            for start in range(0, len(ids), self.max_requests):
                chunk = {cid: fitted[cid] for cid in ids[start:start + self.max_requests]}
                hold = self.ledger.reserve(list(chunk.values()))
                if hold is None:
                    break  # over budget: this chunk and the rest are not sent
                key, entry = self._submit(client, chunk)
                self.ledger.keep_for_batch(hold, entry["batch_id"])
                self._finish(client, key, entry, {cid: todo[cid] for cid in chunk}, hold, deliver)

    def _finish(self, client: Any, key: str, entry: dict[str, Any], reqs: dict[str, ChatRequest], hold: Hold,
                deliver: Callable[[dict[str, ChatReply]], None]) -> bool | None:
        """Wait for a batch and deliver its replies to ``reqs``; True once it settled, False while it still runs
        (its hold stays), None when the provider no longer has it."""
        try:
            batch = self._wait(client, entry["batch_id"])
        except openai.NotFoundError:
            self.state.drop(key)
            self.ledger.settle(hold, [], batch_id=entry["batch_id"])
            return None
        if batch.status not in FINAL:
            self.pending.append(batch.id)
            return False
        replies = self._collect(client, batch, reqs)
        if batch.status == "completed":
            failed = sorted(set(entry.get("failed_ids", ())) | {c for c, r in replies.items() if r.status != "ok"})
            self.state.put(key, {**entry, "status": "completed", "failed_ids": failed})
        else:  # failed / expired / cancelled: what finished is kept; a rerun submits the rest anew
            self.state.drop(key)
        deliver(replies)  # recorded by the runner before the hold goes
        self.ledger.settle(hold, list(replies.values()), batch_id=batch.id)
        return True

    def _submit(self, client: Any, reqs: dict[str, ChatRequest]) -> tuple[str, dict[str, Any]]:
        key = hashlib.sha256("\n".join([self.model, *reqs]).encode()).hexdigest()
        lines = [json.dumps({"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": self.body(r)},
                            ensure_ascii=False) for cid, r in reqs.items()]
        upload = client.files.create(file=("requests.jsonl", ("\n".join(lines) + "\n").encode("utf-8"),
                                           "application/jsonl"), purpose="batch")
        batch = client.batches.create(input_file_id=upload.id, endpoint=ENDPOINT, completion_window="24h",
                                      metadata={"ift_select_set": key[:16]})
        entry = {"batch_id": batch.id, "input_file_id": upload.id, "ids": list(reqs), "status": "submitted",
                 "requests": len(reqs), "created": time.time()}
        self.state.put(key, entry)
        print(f"openai batch {batch.id}: {len(reqs)} requests submitted", file=sys.stderr)
        return key, entry

    def _wait(self, client: Any, batch_id: str) -> Any:
        start = time.monotonic()
        while True:
            batch = client.batches.retrieve(batch_id)
            if batch.status in FINAL:
                return batch
            if self.max_wait_s is not None and time.monotonic() - start + self.poll_s > self.max_wait_s:
                print(f"openai batch {batch_id}: still {batch.status}; rerun to collect it", file=sys.stderr)
                return batch
            time.sleep(self.poll_s)

    def _collect(self, client: Any, batch: Any, reqs: dict[str, ChatRequest]) -> dict[str, ChatReply]:
        replies: dict[str, ChatReply] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for line in client.files.content(file_id).text.splitlines():
                if line.strip():
                    record = json.loads(line)
                    cid = record.get("custom_id")
                    if cid in reqs and cid not in replies:
                        replies[cid] = self._line_reply(record, reqs[cid])
        why = f"batch {batch.id} {batch.status}"
        errors = getattr(getattr(batch, "errors", None), "data", None) or []
        if errors:
            why += ": " + self.scrub("; ".join(str(getattr(e, "message", e)) for e in errors[:3]))
        for cid in reqs:
            replies.setdefault(cid, error_reply(f"no reply in {why}"))
        return replies

    def _line_reply(self, record: dict[str, Any], request: ChatRequest) -> ChatReply:
        response = record.get("response") or {}
        status = response.get("status_code")
        body = response.get("body")
        if status == 200:
            try:
                fitted, cut = self.prepare(request)
                reply = self.read(body, fitted)
                reply.truncated = cut
                return reply
            except ValueError as exc:
                return error_reply(f"unreadable reply: {self.scrub(str(exc))}")
        detail = record.get("error") or (body.get("error") if isinstance(body, dict) else body)
        message = detail.get("message") if isinstance(detail, dict) else detail
        return error_reply(f"HTTP {status}: {self.scrub(str(message))}")
