"""Load params.yaml into the typed ``Params`` (see ``core.params``) and check what spans sections.

Unknown keys and wrong types are errors that name the setting (``params.yaml: train.lr``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ift_select.core.errors import ConfigError
from ift_select.core.params import METHOD_SETTINGS, ArmSpec, Params
from ift_select.core.typed import build


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such params file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    params = build(Params, raw, str(path))
    params = dataclasses.replace(params)  # detach from raw
    _check(params, path)
    return params


REFERENCE = "reference"  # the test sets' reference answers: a judge.pairs side, never an arm's name


def _check(p: Params, path: Path) -> None:
    if not 0.0 <= p.tau <= 5.0:
        raise ConfigError(f"{path}: tau = {p.tau} is outside the grader's 0-5 scale")
    if p.n1 < 0 or p.n2 < 0:
        raise ConfigError(f"{path}: n1 and n2 must be >= 0 (n1 = {p.n1}, n2 = {p.n2})")
    for name, arm in p.arms.items():
        _check_arm(p, name, arm, f"{path}: arms.{name}")
    for name, pair in p.judge.pairs.items():
        for arm in (pair.a, pair.b):
            if arm != REFERENCE and arm not in p.arms:
                raise ConfigError(f"{path}: judge.pairs.{name} names arm {arm!r}, not in arms "
                                  f"({', '.join(p.arms)}) nor {REFERENCE!r} (the test sets' reference answers)")
        if pair.a == REFERENCE:
            raise ConfigError(f"{path}: judge.pairs.{name}: put {REFERENCE!r} on side b (the arm is judged "
                              f"against the reference: {{a: {pair.b}, b: {REFERENCE}}})")
        if pair.a == pair.b:
            raise ConfigError(f"{path}: judge.pairs.{name} compares {pair.a!r} with itself")
    if not 0.0 <= p.judge.max_error_rate <= 1.0:
        raise ConfigError(f"{path}: judge.max_error_rate = {p.judge.max_error_rate} is not a share (0-1)")
    for name, spec in p.judge.qualify.sets.items():
        if spec.sample is not None and spec.sample < 1:
            raise ConfigError(f"{path}: judge.qualify.sets.{name}.sample = {spec.sample} must be >= 1 (null: all)")


def _check_arm(p: Params, name: str, arm: ArmSpec, where: str) -> None:
    if name == REFERENCE:
        raise ConfigError(f"{where}: {REFERENCE!r} is reserved for the test sets' reference answers; rename the arm")
    allowed = METHOD_SETTINGS[arm.method]
    for key in (f.name for f in dataclasses.fields(arm) if f.name != "method"):
        if getattr(arm, key) is not None and key not in allowed:
            raise ConfigError(f"{where}.{key}: not a setting of method {arm.method!r} "
                              f"(its settings: {', '.join(allowed) or 'none'})")
    if arm.tau is not None and not 0.0 <= arm.tau <= 5.0:
        raise ConfigError(f"{where}.tau = {arm.tau} is outside the grader's 0-5 scale")
    if (arm.n1 is not None and arm.n1 < 0) or (arm.n2 is not None and arm.n2 < 0):
        raise ConfigError(f"{where}: n1 and n2 must be >= 0")
    if arm.method == "random":
        if (arm.match is None) == (arm.size is None):
            raise ConfigError(f"{where}: a random arm needs exactly one of match (an arm whose size it takes) "
                              "or size (a number of rows)")
        if arm.match is not None and (arm.match not in p.arms or p.arms[arm.match].method == "random"):
            others = ", ".join(k for k, a in p.arms.items() if a.method != "random")
            raise ConfigError(f"{where}.match: {arm.match!r} is not a non-random arm ({others})")
        if arm.size is not None and arm.size < 1:
            raise ConfigError(f"{where}.size: {arm.size} must be >= 1")


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; used for MLflow params."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
