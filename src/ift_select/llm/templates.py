"""Prompt templates kept as files under prompts/.

A template is text split into chat messages by marker lines ``<<system>>``, ``<<user>>``, ``<<assistant>>``.
A trailing ``<<assistant>>`` turn is a prefill: the start of the reply (local backends continue it).
Messages lose their surrounding newlines only, so a prefill may end in a space.
Placeholders are ``{name}``; only names passed to ``render`` are replaced, so braces in code stay as they are.
Fields are filled in after the text is split into messages, so a field holding a marker line stays text.
``render(..., cuttable=("response",))`` also returns where those fields landed (``Span``s), the parts a backend
may shorten when the prompt is longer than the model's window.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from ift_select.core.errors import ConfigError
from ift_select.core.paths import repo_root
from ift_select.llm.base import Span

Messages = tuple[tuple[str, str], ...]

_MARKER = re.compile(r"^<<(system|user|assistant)>>\s*$", re.MULTILINE)


def resolve(path: str | Path) -> Path:
    """A prompt path as given (relative to cwd), else relative to the repository root."""
    path = Path(path)
    if path.exists():
        return path
    candidate = repo_root() / path
    if candidate.exists():
        return candidate
    raise ConfigError(f"{path}: prompt template not found")


@dataclass(frozen=True)
class Template:
    path: str
    text: str

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:12]

    @overload
    def render(self, cuttable: tuple[()] = (), **fields: str) -> Messages: ...

    @overload
    def render(self, cuttable: Sequence[str], **fields: str) -> tuple[Messages, tuple[Span, ...]]: ...

    def render(self, cuttable: Sequence[str] = (), **fields: str) -> Messages | tuple[Messages, tuple[Span, ...]]:
        """The messages with ``fields`` filled in; with ``cuttable`` (field names), also the spans they fill."""
        unknown = set(cuttable) - set(fields)
        if unknown:
            raise ConfigError(f"{self.path}: cuttable field(s) {', '.join(sorted(unknown))} not given to render")
        pieces, strip = self._pieces
        names = tuple(fields)
        messages, spans = [], []
        for index, (role, raw) in enumerate(pieces):
            content, found = _fill(_segments(raw, names), fields, set(cuttable))
            stripped = content.strip(strip)
            offset = len(content) - len(content.lstrip(strip))
            messages.append((role, stripped))
            for start, end in found:
                start, end = max(0, start - offset), min(len(stripped), end - offset)
                if end > start:
                    spans.append((index, start, end))
        return (tuple(messages), tuple(spans)) if cuttable else tuple(messages)

    @functools.cached_property
    def _pieces(self) -> tuple[list[tuple[str, str]], str | None]:
        """(role, raw text) per message, and what to strip around each (split once: a pool renders it per row)."""
        parts = _MARKER.split(self.text)
        if len(parts) < 3:
            return [("user", self.text)], None
        return list(zip(parts[1::2], parts[2::2])), "\n"


@functools.lru_cache(maxsize=256)
def _segments(text: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """``text`` split at its ``{name}`` placeholders: literal, name, literal, ..., literal."""
    if not names:
        return (text,)
    return tuple(re.split(r"\{(" + "|".join(map(re.escape, names)) + r")\}", text))


def _fill(segments: tuple[str, ...], fields: dict[str, str], cuttable: set[str]) -> tuple[str, list[tuple[int, int]]]:
    """The text of ``segments`` with its placeholders filled from ``fields``, and the (start, end) of each
    cuttable one."""
    out, spans, length = list(segments), [], 0
    for k in range(1, len(segments), 2):
        name = segments[k]
        value = out[k] = str(fields[name])
        length += len(segments[k - 1])
        if name in cuttable:
            spans.append((length, length + len(value)))
        length += len(value)
    return "".join(out), spans


def load_template(path: str | Path) -> Template:
    resolved = resolve(path)
    text = resolved.read_text(encoding="utf-8")
    if not _MARKER.search(text):
        raise ConfigError(f"{path}: a prompt template needs at least one <<system>>/<<user>> marker line")
    return Template(path=str(path), text=text)
