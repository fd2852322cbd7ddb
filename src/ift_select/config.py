"""Typed view of params.yaml. Every stage reads its section through these dataclasses.

Unknown keys and wrong types are errors that name the setting (``params.yaml: train.lr``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ift_select.errors import ConfigError

Precision = Literal["auto", "bf16", "fp32"]


@dataclass
class OpenAISettings:
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 16
    timeout_s: float = 60.0
    max_retries: int = 6
    temperature: float = 0.0
    max_cost_usd: float | None = None
    batch_api: bool = False
    top_logprobs: int = 20
    prefill: Literal["drop", "send", "continue"] = "drop"  # what to do with a prompt's trailing assistant turn
    poll_s: float = 30.0  # batch API: seconds between polls
    max_wait_s: float | None = None  # batch API: stop waiting (resumable) after this long


@dataclass
class TestSetSpec:
    path: str
    format: str = "auto"


@dataclass
class DataParams:
    pool: str = "data/sample/pool.jsonl"
    format: str = "auto"
    field_map: dict[str, str] = field(default_factory=dict)
    on_invalid: Literal["error", "skip"] = "error"
    max_rows: int | None = None
    test_sets: dict[str, TestSetSpec] = field(default_factory=dict)


@dataclass
class ScoreParams:
    backend: Literal["local", "openai"] = "local"
    model: str = "smollm2-135m-instruct"
    dimension: str = "accuracy"
    prompt: str = "prompts/alpagasus_rating_prefill.txt"
    batch_size: int = 8
    max_new_tokens: int = 24
    min_prob_mass: float = 0.1
    precision: Precision = "auto"
    max_length: int = 768
    iqs_model: str | None = None
    openai: OpenAISettings = field(default_factory=OpenAISettings)
    # Extra graders: {name: {any score.* key to override}}; each adds columns score_<name>, status_<name>, ...
    graders: dict[str, dict[str, Any]] = field(default_factory=dict)

    def grader(self, name: str) -> ScoreParams:
        """The settings of extra grader ``name``: the primary grader's, overridden by ``graders[name]``."""
        base = dataclasses.asdict(self)
        base.pop("graders")
        overrides = self.graders[name]
        merged = {**base, **overrides, "openai": {**base["openai"], **overrides.get("openai", {})}}
        return build(ScoreParams, merged, f"score.graders.{name}")


@dataclass
class EmbedParams:
    model: str = "all-minilm-l6-v2"
    batch_size: int = 16
    precision: Precision = "auto"


@dataclass
class CarParams:
    scorer: Literal["grader", "iqs"] = "grader"
    pca_variance: float = 0.95
    k: int | None = None
    n_init: int = 10


@dataclass
class AlpagasusSelect:
    column: str = "score"


@dataclass
class SelectParams:
    alpagasus: AlpagasusSelect = field(default_factory=AlpagasusSelect)


@dataclass
class RandomParams:
    match: str = "alpagasus"


@dataclass
class LoraParams:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    merge: bool = True
    qlora: bool = False


@dataclass
class TrainParams:
    seed: int = 42
    epochs: float = 1
    lr: float = 5e-5
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 256
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"
    weight_decay: float = 0.0
    precision: Precision = "auto"
    group_by_length: bool = True
    save_dtype: Literal["bfloat16", "float32", "float16"] = "bfloat16"
    checkpoint_steps: int = 50
    launcher: Literal["python", "accelerate"] = "python"
    accelerate_config: str = "configs/accelerate/cpu.yaml"
    lora: LoraParams = field(default_factory=LoraParams)


@dataclass
class GenerateParams:
    seed: int = 42
    batch_size: int = 16
    max_new_tokens: int = 96
    do_sample: bool = False
    temperature: float = 0.95
    top_p: float = 0.7
    top_k: int = 50
    max_prompt_length: int = 512
    precision: Precision = "auto"
    engine: Literal["hf", "vllm"] = "hf"


@dataclass
class JudgePair:
    a: str
    b: str


@dataclass
class JudgeParams:
    backend: Literal["local", "openai"] = "local"
    model: str = "smollm2-135m-instruct"
    prompt: str = "prompts/judge_mt_bench_prefill.txt"
    batch_size: int = 8
    max_new_tokens: int = 24
    precision: Precision = "auto"
    max_length: int = 1024
    openai: OpenAISettings = field(default_factory=OpenAISettings)
    pairs: dict[str, JudgePair] = field(default_factory=dict)


@dataclass
class ReportParams:
    bootstrap: int = 1000
    ci: float = 0.95


@dataclass
class MlflowParams:
    tracking_uri: str | None = None
    experiment: str = "ift-select"


@dataclass
class ArmSpec:
    p1: str
    p2: str
    p3: str
    p4: str
    in1: str
    in2: str


@dataclass
class Params:
    tau: float = 3.0
    n1: int = 30
    n2: int = 1
    seed: int = 42
    base_model: str = "smollm2-135m-instruct"
    arms: dict[str, ArmSpec] = field(default_factory=dict)
    data: DataParams = field(default_factory=DataParams)
    score: ScoreParams = field(default_factory=ScoreParams)
    embed: EmbedParams = field(default_factory=EmbedParams)
    car: CarParams = field(default_factory=CarParams)
    select: SelectParams = field(default_factory=SelectParams)
    random: RandomParams = field(default_factory=RandomParams)
    train: TrainParams = field(default_factory=TrainParams)
    generate: GenerateParams = field(default_factory=GenerateParams)
    judge: JudgeParams = field(default_factory=JudgeParams)
    report: ReportParams = field(default_factory=ReportParams)
    pricing: dict[str, Any] = field(default_factory=dict)
    mlflow: MlflowParams = field(default_factory=MlflowParams)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        _, vt = args
        return {str(k): _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def build(cls: type, mapping: Any, where: str) -> Any:
    """Build dataclass ``cls`` from ``mapping``; errors name the offending key."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, mapping)) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown setting {where}.{unknown[0]} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in mapping:
            kwargs[f.name] = _convert(hints[f.name], mapping[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required setting {where}.{f.name}")
    return cls(**kwargs)


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


def _check(p: Params, path: Path) -> None:
    if not 0.0 <= p.tau <= 5.0:
        raise ConfigError(f"{path}: tau = {p.tau} is outside the grader's 0-5 scale")
    if p.n1 < 0 or p.n2 < 0:
        raise ConfigError(f"{path}: n1 and n2 must be >= 0 (n1 = {p.n1}, n2 = {p.n2})")
    for name, pair in p.judge.pairs.items():
        for arm in (pair.a, pair.b):
            if p.arms and arm not in p.arms:
                raise ConfigError(f"{path}: judge.pairs.{name} names arm {arm!r}, not in arms ({', '.join(p.arms)})")


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
