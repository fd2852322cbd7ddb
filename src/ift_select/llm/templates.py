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
        parts = _MARKER.split(self.text)
        if len(parts) < 3:
            pieces, strip = [("user", self.text)], None
        else:
            pieces, strip = list(zip(parts[1::2], parts[2::2])), "\n"
        messages, spans = [], []
        for index, (role, raw) in enumerate(pieces):
            content, found = _fill(raw, fields, set(cuttable))
            stripped = content.strip(strip)
            offset = len(content) - len(content.lstrip(strip))
            messages.append((role, stripped))
            for start, end in found:
                start, end = max(0, start - offset), min(len(stripped), end - offset)
                if end > start:
                    spans.append((index, start, end))
        return (tuple(messages), tuple(spans)) if cuttable else tuple(messages)


def _fill(text: str, fields: dict[str, str], cuttable: set[str]) -> tuple[str, list[tuple[int, int]]]:
    """``text`` with ``{name}`` placeholders of ``fields`` replaced, and the (start, end) of each cuttable one."""
    if not fields:
        return text, []
    pattern = re.compile(r"\{(" + "|".join(map(re.escape, fields)) + r")\}")
    out, spans, last, length = [], [], 0, 0
    for match in pattern.finditer(text):
        value = str(fields[match.group(1)])
        out += [text[last:match.start()], value]
        length += match.start() - last
        if match.group(1) in cuttable:
            spans.append((length, length + len(value)))
        length += len(value)
        last = match.end()
    out.append(text[last:])
    return "".join(out), spans


def load_template(path: str | Path) -> Template:
    resolved = resolve(path)
    text = resolved.read_text(encoding="utf-8")
    if not _MARKER.search(text):
        raise ConfigError(f"{path}: a prompt template needs at least one <<system>>/<<user>> marker line")
    return Template(path=str(path), text=text)
