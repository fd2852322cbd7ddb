"""What DVC knows about a stage, read without running DVC: its deps/outs/params from dvc.yaml, the hashes
DVC records for files and directories, and the output hashes in dvc.lock.

``dvc_hash`` equals the ``md5`` DVC 3 writes to dvc.lock: the md5 of a file's bytes, and for a directory
``md5(json.dumps(sorted [{"md5": <file md5>, "relpath": <posix path>}], sort_keys=True)) + ".dir"``
(DVC's tree digest). Files matched by ``.dvcignore`` are not excluded here (this project has none in
its outputs).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from hashlib import md5
from pathlib import Path
from typing import Any

import yaml

from ift_select.io import md5_file

_VAR = re.compile(r"\$\{\s*([^}]+?)\s*\}")


def dvc_hash(path: str | Path) -> str:
    """DVC's md5 of a file, or its ``<md5>.dir`` hash of a directory (see the module docstring)."""
    path = Path(path)
    if not path.is_dir():
        return md5_file(path)
    entries = sorted(({"md5": md5_file(p), "relpath": p.relative_to(path).as_posix()}
                      for p in path.rglob("*") if p.is_file()), key=lambda e: e["relpath"])
    return md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


@dataclass
class StageSpec:
    """One stage of dvc.yaml after interpolation (``select@alpagasus``: the foreach item resolved)."""

    name: str
    deps: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)  # outs, metrics and plots
    params: list[str] = field(default_factory=list)  # keys of params.yaml


def _lookup(context: dict[str, Any], dotted: str) -> Any:
    value: Any = context
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def _interpolate(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:
            return _lookup(context, whole.group(1))
        return _VAR.sub(lambda m: str(_lookup(context, m.group(1))), value)
    if isinstance(value, list):
        return [_interpolate(v, context) for v in value]
    if isinstance(value, dict):
        return {_interpolate(k, context): _interpolate(v, context) for k, v in value.items()}
    return value


def _paths(entries: list[Any] | None) -> list[str]:
    out = []
    for entry in entries or []:
        out.extend([entry] if isinstance(entry, str) else list(entry))
    return out


def _param_keys(entries: list[Any] | None) -> list[str]:
    keys = []
    for entry in entries or []:
        if isinstance(entry, str):
            keys.append(entry)
        elif isinstance(entry, dict):  # {params file: [keys]}
            for file_keys in entry.values():
                keys.extend(file_keys or [])
    return list(dict.fromkeys(keys))


def stage_names(root: Path = Path(".")) -> list[str]:
    """Every stage address in dvc.yaml (``prepare``, ``select@alpagasus``, ...); [] when it cannot be read."""
    try:
        dvcyaml, context = _load(root)
        names = []
        for name, body in (dvcyaml.get("stages") or {}).items():
            if isinstance(body, dict) and "foreach" in body:
                names.extend(f"{name}@{key}" for key in _foreach(body, context))
            else:
                names.append(name)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError):
        return []
    return names


def _load(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    dvcyaml = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}
    params_file = root / "params.yaml"
    context = (yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}) if params_file.exists() else {}
    return dvcyaml, context


def _foreach(body: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    items = _interpolate(body["foreach"], context)
    if isinstance(items, dict):
        return {str(k): v for k, v in items.items()}
    return {str(v) if isinstance(v, (str, int)) else str(i): v for i, v in enumerate(items or [])}


def stage_spec(address: str, root: Path = Path(".")) -> StageSpec | None:
    """The resolved deps, outs (incl. metrics and plots) and param keys of stage ``address``, or None when
    dvc.yaml has no such stage (or cannot be read)."""
    try:
        dvcyaml, context = _load(root)
        name, _, key = address.partition("@")
        body = (dvcyaml.get("stages") or {}).get(name)
        if not isinstance(body, dict):
            return None
        if "foreach" in body:
            items = _foreach(body, context)
            if key not in items:
                return None
            body = body["do"]
            context = {**context, "key": key, "item": items[key]}
        elif key:
            return None
        resolved = _interpolate({k: body.get(k) for k in ("deps", "outs", "metrics", "plots", "params")}, context)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None
    return StageSpec(address, deps=_paths(resolved["deps"]),
                     outs=_paths(resolved["outs"]) + _paths(resolved["metrics"]) + _paths(resolved["plots"]),
                     params=_param_keys(resolved["params"]))


def current_address(name: str, root: Path = Path(".")) -> str:
    """The DVC address of the running stage: ``DVC_STAGE`` (set by DVC for every command), else derived
    from the stage script's name (``select_alpagasus`` -> ``select@alpagasus`` when dvc.yaml has a foreach
    stage ``select``)."""
    env = os.environ.get("DVC_STAGE")
    if env:
        return env.split(":")[-1]  # "dvc.yaml:stage" when the dvc.yaml is not at the root
    try:
        stages = (yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError):
        return name
    if name in stages:
        return name
    prefix, _, rest = name.partition("_")
    if rest and isinstance(stages.get(prefix), dict) and "foreach" in stages[prefix]:
        return f"{prefix}@{rest}"
    return name


def lock_outs(root: Path = Path(".")) -> dict[str, dict[str, str]]:
    """{stage: {out path: md5}} from dvc.lock ({} when there is none)."""
    path = root / "dvc.lock"
    try:
        lock = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return {stage: {o["path"]: o.get("md5", "") for o in (body or {}).get("outs") or []}
            for stage, body in (lock.get("stages") or {}).items()}
