"""Compare what each stage read (its strace and params log, written under IFT_SELECT_AUDIT_DIR; see
ift_select.core.audit) with what dvc.yaml declares, as DVC itself resolves it (dvc.repo.Repo).

Checked inside the repository: every file a stage opened for reading (data, prompts, configs, models) and
every ift_select module it imported (its .py, or the cached .pyc, mapped back) must lie under one of the
stage's deps or its own outs; every params key its body read must be covered by a declared params key.
Not checked: files outside the repository (Python, installed packages, shipped models, caches); the records
every stage keeps for provenance (dvc.yaml, dvc.lock, params.yaml as a whole, .git, .dvc, .gitignore files,
MLflow's store, the request cache); and directory listings, because DVC's own API (which every stage uses for
hashes and stage specs) walks the whole repository: a stage that lists a directory reads the files it uses,
and those reads are checked.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

EXEMPT = (".git", ".dvc", "dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore", "mlartifacts", ".ift-cache")
EXEMPT_NAMES = (".gitignore", "mlflow.db", "mlflow.db-journal", "mlflow.db-wal", "mlflow.db-shm")
# strace -y: fds print with their paths, so `= 3</abs/path>` names what was opened, whatever the dirfd
_CALL = re.compile(r'^(?P<pid>\d+)\s+(?P<call>open|openat|openat2)\((?:(?:AT_FDCWD|\d+)(?:<[^>]*>)?, )?"(?P<path>(?:[^"\\]|\\.)*)", '
                   r"(?P<flags>[A-Z0-9_|]+)")
_RESULT = re.compile(r"= (?P<fd>-?\d+)(?:<(?P<path>[^>]*)>)?")
_PYC = re.compile(r"^(?P<dir>.*)/__pycache__/(?P<mod>[^/.]+)\.cpython-\d+\.pyc$")


@dataclass
class StageReads:
    files: set[str] = field(default_factory=set)  # repository-relative paths read (modules as .py)
    params: set[str] = field(default_factory=set)


def _opens(trace: str) -> list[tuple[str, str]]:
    """(absolute path, flags) of every successful open in an ``strace -f -y`` log (unfinished/resumed calls
    joined); the path is the one the returned fd names."""
    pending: dict[str, str] = {}
    found = []

    def done(flags: str, tail: str) -> None:
        r = _RESULT.search(tail)
        if r and int(r.group("fd")) >= 0 and r.group("path"):
            found.append((r.group("path").encode().decode("unicode_escape"), flags))

    for line in trace.splitlines():
        if "resumed>" in line:
            pid = line.split()[0]
            if pid in pending:
                done(pending.pop(pid), line[line.index("resumed>"):])
            continue
        m = _CALL.match(line)
        if not m:
            continue
        if line.rstrip().endswith("<unfinished ...>"):
            pending[m.group("pid")] = m.group("flags")
        else:
            done(m.group("flags"), line[m.end():])
    return found


def _relative(path: str, root: Path) -> str | None:
    full = Path(os.path.normpath(path if os.path.isabs(path) else root / path))
    try:
        return full.relative_to(root).as_posix()
    except ValueError:
        return None


def stage_reads(audit_dir: Path, address: str, root: Path) -> StageReads | None:
    trace_file = audit_dir / f"{address}.strace"
    if not trace_file.exists():
        return None
    reads = StageReads()
    for path, flags in _opens(trace_file.read_text(errors="replace")):
        if "O_WRONLY" in flags:
            continue
        rel = _relative(path, root)
        if rel is None or rel == ".":
            continue
        if "O_DIRECTORY" in flags:  # listings: see the module docstring
            continue
        pyc = _PYC.match(rel)
        reads.files.add(f"{pyc.group('dir')}/{pyc.group('mod')}.py" if pyc else rel)
    params_file = audit_dir / f"{address}.params.json"
    if params_file.exists():
        reads.params = set(json.loads(params_file.read_text()))
    return reads


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _covered_key(key: str, declared: list[str]) -> bool:
    return any(key == d or key.startswith(d + ".") for d in declared)


def undeclared(root: Path, audit_dir: Path, specs: dict) -> list[str]:
    """Every read a stage's declaration does not cover, as 'stage: kind path'. ``specs``: address ->
    ift_select.provenance.dvcrepo.StageSpec (deps, outs, params)."""
    problems = []
    for address, spec in sorted(specs.items()):
        reads = stage_reads(audit_dir, address, root)
        if reads is None:
            problems.append(f"{address}: no trace (did the stage run under IFT_SELECT_AUDIT_DIR?)")
            continue
        allowed = [*spec.deps, *spec.outs]
        for path in sorted(reads.files):
            if _under(path, list(EXEMPT)) or os.path.basename(path) in EXEMPT_NAMES or _under(path, allowed) \
                    or _own_temp(path, spec.outs):
                continue
            kind = "module" if path.startswith("src/") else "file"
            problems.append(f"{address}: {kind} {path} is read but not in deps")
        for key in sorted(reads.params):
            if not _covered_key(key, spec.params):
                problems.append(f"{address}: params key {key} is read but not among its params")
    return problems


def _own_temp(path: str, outs: list[str]) -> bool:
    """Atomic writes read back their temporary file or directory (``.<name>.*`` beside an out) before renaming."""
    for out in outs:
        parent = os.path.dirname(out)
        rest = os.path.relpath(path, parent or ".") if _under(path, [parent]) or not parent else ""
        if rest and not rest.startswith("..") and rest.split("/")[0].startswith(f".{os.path.basename(out)}."):
            return True
    return False


def readers(root: Path, audit_dir: Path, specs: dict, path: str) -> set[str]:
    """The stages whose trace shows they read ``path``."""
    found = set()
    for address in specs:
        reads = stage_reads(audit_dir, address, root)
        if reads is not None and path in reads.files:
            found.add(address)
    return found
