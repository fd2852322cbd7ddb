"""What a stage really reads, recorded for the dependency test (tests/test_dvc_deps.py), never in normal runs.

With ``IFT_SELECT_AUDIT_DIR`` set, every stage run writes into that directory:

- ``<address>.strace``: the stage process (and its children) re-run under ``strace``, tracing every file open:
  data, prompts, configs and the Python modules it imports (a module shows as its .py or cached .pyc);
- ``<address>.params.json``: every params.yaml key its body read (``judge.model``, ``arms.car``): the typed
  params are wrapped so that each read of a setting is logged with its dotted path.

The test compares both with the deps and params DVC reads from dvc.yaml.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ift_select.core.errors import ConfigError

ENV_DIR = "IFT_SELECT_AUDIT_DIR"
ENV_TRACED = "IFT_SELECT_AUDIT_TRACED"


def trace_if_auditing(label: str) -> None:
    """Under ``IFT_SELECT_AUDIT_DIR``: run this very command again under strace and exit with its status."""
    directory = os.environ.get(ENV_DIR)
    if not directory or os.environ.get(ENV_TRACED):
        return
    strace = shutil.which("strace")
    if strace is None:
        raise ConfigError(f"{ENV_DIR} is set but strace is not installed (apt-get install strace)")
    out = Path(directory) / f"{label}.strace"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [strace, "--seccomp-bpf", "-f", "-qq", "-y", "-e", "trace=open,openat,openat2", "-e", "signal=none", "-o", str(out),
               sys.executable, *sys.orig_argv[1:]]
    sys.exit(subprocess.run(command, env={**os.environ, ENV_TRACED: "1"}).returncode)


class _Log:
    def __init__(self) -> None:
        self.keys: set[str] = set()


class TrackedDict(dict):
    """A params mapping that logs ``<prefix>.<key>`` per key read and ``<prefix>`` when read whole."""

    def __init__(self, data: dict, prefix: str, log: _Log) -> None:
        super().__init__(data)
        self._prefix, self._log = prefix, log

    def _key(self, key: Any) -> None:
        self._log.keys.add(f"{self._prefix}.{key}")

    def _whole(self) -> None:
        self._log.keys.add(self._prefix)

    def __getitem__(self, key: Any) -> Any:
        self._key(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._key(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._key(key)
        return super().__contains__(key)

    def __iter__(self) -> Iterator[Any]:
        self._whole()
        return super().__iter__()

    def __len__(self) -> int:
        self._whole()
        return super().__len__()

    def keys(self):  # type: ignore[override]
        self._whole()
        return super().keys()

    def items(self):  # type: ignore[override]
        self._whole()
        return super().items()

    def values(self):  # type: ignore[override]
        self._whole()
        return super().values()

    def __reduce__(self):  # deepcopy/pickle as a plain dict (the copy reads everything: logged whole)
        self._whole()
        return (dict, (dict(super().items()),))


_TRACKED: dict[type, type] = {}


def _tracked_class(cls: type) -> type:
    """A subclass of dataclass ``cls`` whose field reads are logged (``__dict__`` reads the whole section)."""
    if cls not in _TRACKED:
        fields = {f.name for f in dataclasses.fields(cls)}

        def __getattribute__(self: Any, name: str) -> Any:  # noqa: N807
            value = object.__getattribute__(self, name)
            if name in fields or name == "__dict__":
                state = object.__getattribute__(self, "__dict__")
                log, prefix = state.get("_audit_log"), state.get("_audit_prefix", "")
                if log is not None and not isinstance(value, (TrackedDict,)) and \
                        not (dataclasses.is_dataclass(value) and name != "__dict__"):
                    log.keys.add(prefix.rstrip(".") if name == "__dict__" else f"{prefix}{name}")
            return value

        _TRACKED[cls] = type(cls.__name__, (cls,), {"__getattribute__": __getattribute__})
    return _TRACKED[cls]


def _wrap(value: Any, path: str, log: _Log) -> Any:
    """``value`` (the setting at dotted ``path``; "" for the whole params) with its reads logged."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kwargs = {f.name: _wrap(getattr(value, f.name), f"{path}.{f.name}" if path else f.name, log)
                  for f in dataclasses.fields(value)}
        wrapped = _tracked_class(type(value))(**kwargs)
        wrapped.__dict__.update(_audit_log=log, _audit_prefix=f"{path}." if path else "")
        return wrapped
    if isinstance(value, dict):
        return TrackedDict({k: _wrap(v, f"{path}.{k}", log) for k, v in value.items()}, path, log)
    return value


@contextlib.contextmanager
def watching(address: str, params: Any) -> Iterator[Any]:
    """Yield ``params`` (wrapped to log every setting read when auditing) and write the log at the end."""
    directory = os.environ.get(ENV_DIR)
    if not directory:
        yield params
        return
    log = _Log()
    wrapped = _wrap(params, "", log)
    try:
        yield wrapped
    finally:
        path = Path(directory) / f"{address}.params.json"
        path.write_text(json.dumps(sorted(log.keys), indent=1) + "\n", encoding="utf-8")
