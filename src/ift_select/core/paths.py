"""Where shared state lives: the repository root, the LLM cache, the MLflow store.

``dvc exp run --temp`` and ``--queue`` run in a copy under ``<repo>/.dvc/tmp/exps/``; state that must
survive the copy (the paid-request cache, MLflow records) resolves to the main repository instead.
"""

from __future__ import annotations

import os
from pathlib import Path

_EXPS_MARKER = (".dvc", "tmp", "exps")


def repo_root(start: str | Path | None = None) -> Path:
    """The main repository's root: ``IFT_SELECT_ROOT`` if set, else the nearest dir with .dvc or .git,
    stepping out of DVC's temporary experiment copies."""
    env = os.environ.get("IFT_SELECT_ROOT") or os.environ.get("DVC_ROOT")  # dvc exp run sets DVC_ROOT
    if env:
        return Path(env).resolve()
    here = Path(start or os.getcwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - len(_EXPS_MARKER) + 1):
        if tuple(parts[i : i + len(_EXPS_MARKER)]) == _EXPS_MARKER:
            return Path(*parts[:i])
    for candidate in (here, *here.parents):
        if (candidate / ".dvc").is_dir() or (candidate / ".git").exists():
            return candidate
    return here


def cache_dir() -> Path:
    """The LLM request cache and other state kept outside DVC outputs (``.ift-cache/`` at the root)."""
    return Path(os.environ.get("IFT_SELECT_CACHE_DIR") or repo_root() / ".ift-cache")


def default_tracking_uri() -> str:
    return f"sqlite:///{repo_root() / 'mlflow.db'}"


def models_cache_dir() -> Path:
    """Converted models (GGUF -> HF dirs), keyed by content: shared by every checkout of the user."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ift-select" / "models"
    return Path(os.environ.get("IFT_SELECT_MODELS_DIR") or default)
