"""What DVC knows about the pipeline, asked through DVC's own API (``dvc.repo.Repo``, ``dvc_data``).

- ``stage_spec(address)``: a stage's deps, outs (incl. metrics and plots) and params keys, as DVC itself
  resolves dvc.yaml (``vars``, ``foreach``, ``matrix``, interpolation);
- ``lock_outs()``: the output hashes dvc.lock records per stage;
- ``dvc_hash(path)``: the md5 DVC records for a file, or its ``<md5>.dir`` tree hash of a directory,
  honouring .dvcignore (computed by ``dvc_data``, the library DVC hashes with);
- ``check_declared(inputs)``: under ``dvc repro``, that the files settings point to are deps of the stage.

Outside a DVC repository ``stage_spec`` is None and ``dvc_hash`` hashes without ignore rules.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StageSpec:
    """One stage as DVC resolved it (``select@alpagasus``: the foreach item filled in)."""

    name: str
    deps: list[str] = field(default_factory=list)  # paths, relative to the repository root
    outs: list[str] = field(default_factory=list)  # outs, metrics and plots
    params: list[str] = field(default_factory=list)  # keys of params.yaml


@functools.lru_cache(maxsize=4)
def _repo(root: str) -> Any:
    from dvc.repo import Repo

    return Repo(root, uninitialized=False)


def repo(root: str | Path | None = None) -> Any | None:
    """The DVC repository at ``root`` (default: the working directory's), or None where there is none."""
    base = Path(root) if root is not None else Path.cwd()
    if not (base / ".dvc").is_dir():
        return None
    try:
        return _repo(str(base.resolve()))
    except Exception:  # noqa: BLE001 -- not a usable DVC repo: hash without it
        return None


def dvc_hash(path: str | Path) -> str:
    """DVC's hash of ``path``: the md5 of a file, ``<md5>.dir`` for a directory."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db.reference import ReferenceHashFileDB
    from dvc_objects.fs.local import LocalFileSystem
    from dvc_objects.fs.memory import MemoryFileSystem

    dvc = repo()
    fs = dvc.fs if dvc is not None else LocalFileSystem()
    target = os.path.abspath(path)
    if not os.path.exists(target):
        raise FileNotFoundError(target)
    odb = ReferenceHashFileDB(MemoryFileSystem(), "/")
    _, _, obj = build(odb, target, fs, "md5", ignore=dvc.dvcignore if dvc is not None else None)
    return str(obj.hash_info.value)


def _relative(path: str, root: str) -> str:
    return os.path.relpath(path, root) if os.path.isabs(path) else path


def _spec(stage: Any, root: str) -> StageSpec:
    deps, params = [], []
    for dep in stage.deps:
        if hasattr(dep, "params"):  # a params dependency: its keys
            params.extend(dep.params or [])
        else:
            deps.append(_relative(dep.def_path, root))
    return StageSpec(stage.name, deps=deps, outs=[_relative(o.def_path, root) for o in stage.outs],
                     params=list(dict.fromkeys(params)))


def stages(root: str | Path | None = None) -> dict[str, StageSpec]:
    """Every stage of the repository's dvc.yaml, by address; {} outside a DVC repository.

    DVC resolves the stages once per content of dvc.yaml and the params files it interpolates from; the
    result is kept in DVC's temporary directory (``.dvc/tmp/ift-select-stages/<key>.json``), so the thirty-odd stages of a run
    do not each pay DVC's two-second index load for the same answer."""
    dvc = repo(root)
    if dvc is None:
        return {}
    memo = _memo_path(Path(dvc.root_dir), Path(dvc.tmp_dir))
    if memo is not None and memo.exists():
        try:
            return {name: StageSpec(**spec) for name, spec in json.loads(memo.read_text()).items()}
        except (ValueError, TypeError):  # a file from another version of StageSpec: resolve again
            pass
    found = {s.name: _spec(s, dvc.root_dir) for s in dvc.index.stages if s.cmd}
    if memo is not None:
        from ift_select.core.io import write_json

        write_json(memo, {name: asdict(spec) for name, spec in found.items()})
    return found


def _memo_path(root: Path, tmp_dir: Path) -> Path | None:
    """Where the resolved stages of ``root`` are kept, keyed by DVC's version and the bytes of dvc.yaml and of
    every params file its ``vars`` name (None when dvc.yaml cannot be read)."""
    import hashlib

    import dvc
    import yaml

    try:
        text = (root / "dvc.yaml").read_bytes()
        pipeline = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except (OSError, yaml.YAMLError):
        return None
    named = [v for v in pipeline.get("vars") or [] if isinstance(v, str)]
    named += [v for stage in (pipeline.get("stages") or {}).values() if isinstance(stage, dict)
              for v in stage.get("vars") or [] if isinstance(v, str)]
    digest = hashlib.sha256(f"{dvc.__version__}\0".encode() + text)
    for name in ["params.yaml", *named]:
        path = root / name.split(":", 1)[0]
        digest.update(b"\0" + name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    return tmp_dir / "ift-select-stages" / f"{digest.hexdigest()[:32]}.json"


def stage_spec(address: str, root: str | Path | None = None) -> StageSpec | None:
    return stages(root).get(address)


def lock_outs(root: str | Path | None = None) -> dict[str, dict[str, str]]:
    """{stage address: {out path: md5}} as dvc.lock records them ({} when nothing is locked)."""
    dvc = repo(root)
    if dvc is None:
        return {}
    found: dict[str, dict[str, str]] = {}
    for stage in dvc.index.stages:
        hashes = {_relative(o.def_path, dvc.root_dir): o.hash_info.value for o in stage.outs if o.hash_info}
        if hashes:
            found[stage.name] = {k: str(v) for k, v in hashes.items() if v}
    return found


def check_declared(inputs: dict[str, str | Path | None]) -> None:
    """Under ``dvc repro`` (DVC sets ``DVC_STAGE``), fail naming the setting when a file or directory that a
    setting points to (``score.iqs_model: models/iqs``) is not within one of the running stage's deps, since
    DVC would then not rerun the stage when it changes. dvc.yaml cannot declare a file that a setting may or
    may not name, so the user adds it to the stage's deps. Values that are no path here (hub ids, aliases,
    None) are not files this stage reads from the repository and pass."""
    address = os.environ.get("DVC_STAGE")
    files = {setting: value for setting, value in inputs.items() if value is not None and Path(value).exists()}
    if not address or not files:
        return
    root = Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()
    spec = stage_spec(address, root)
    if spec is None:
        return
    declared = [(root / dep).resolve() for dep in spec.deps]
    for setting, value in files.items():
        target = Path(value).resolve()
        if not any(target == dep or dep in target.parents for dep in declared):
            from ift_select.core.errors import ConfigError

            raise ConfigError(f"{setting}: {value} is read by stage {address} but is not one of its deps, so DVC "
                              f"would not rerun it when {value} changes; add {value} to the deps of stage "
                              f"{address.split('@')[0]} in dvc.yaml")
