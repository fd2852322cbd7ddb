"""Prompt templates kept as files under prompts/.

A template is text split into chat messages by marker lines ``<<system>>``, ``<<user>>``, ``<<assistant>>``.
A trailing ``<<assistant>>`` turn is a prefill: the start of the reply (local backends continue it).
Messages lose their surrounding newlines only, so a prefill may end in a space.
Placeholders are ``{name}``; only names passed to ``render`` are replaced, so braces in code stay as they are.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ift_select.core.errors import ConfigError
from ift_select.core.paths import repo_root

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

    def render(self, **fields: str) -> tuple[tuple[str, str], ...]:
        pattern = re.compile(r"\{(" + "|".join(map(re.escape, fields)) + r")\}") if fields else None
        text = pattern.sub(lambda m: str(fields[m.group(1)]), self.text) if pattern else self.text
        parts = _MARKER.split(text)
        if len(parts) < 3:
            return (("user", text.strip()),)
        messages = [(role, content.strip("\n")) for role, content in zip(parts[1::2], parts[2::2])]
        return tuple(messages)


def load_template(path: str | Path) -> Template:
    resolved = resolve(path)
    text = resolved.read_text(encoding="utf-8")
    if not _MARKER.search(text):
        raise ConfigError(f"{path}: a prompt template needs at least one <<system>>/<<user>> marker line")
    return Template(path=str(path), text=text)
