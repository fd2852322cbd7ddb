"""The typed view of params.yaml: one dataclass per section, its defaults params.yaml's (tests/test_config.py
checks). Loaded and validated by ``core.config``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ift_select.core.typed import build

Precision = Literal["auto", "bf16", "fp32"]
Backend = Literal["local", "openai", "llamacpp"]


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
    paid: Literal["auto"] | bool = "auto"  # auto: paid unless base_url is on loopback or a private network
    max_prompt_tokens: int | None = None  # cut cuttable fields of longer prompts (counted as the pricing does)


@dataclass
class LlamaCppSettings:
    """The managed llama.cpp server (backend ``llamacpp``): started on 127.0.0.1 for a GGUF model."""

    threads: int | None = None  # None: every core this process may use
    ctx: int = 2048  # tokens per slot, prompt and reply; longer prompts are cut in their cuttable fields
    parallel: int = 1  # slots: requests decoded together
    batch: int = 2048  # logical batch (llama.cpp n_batch)
    ubatch: int = 512  # physical batch (n_ubatch)
    chat_template: str | None = None  # None: the GGUF's own; else a llama.cpp built-in name (chatml, llama3, ...)
    top_logprobs: int = 20
    timeout_s: float = 600.0  # per request
    startup_timeout_s: float = 300.0


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
    backend: Backend = "llamacpp"
    model: str = "qwen2.5-coder-1.5b-instruct"
    dimension: str = "accuracy"
    prompt: str = "prompts/alpagasus_rating_rubric.txt"
    batch_size: int = 8
    max_new_tokens: int = 8
    min_prob_mass: float = 0.1
    fractions: bool = False  # True: score_expected reads each likely digit's fraction (short follow-up requests)
    check: str | None = None  # a yes/no correctness question asked after each rating (grading.check)
    precision: Precision = "auto"
    max_length: int = 768
    max_error_rate: float = 0.05  # the stage fails when more rows than this share end in error
    iqs_model: str | None = None
    openai: OpenAISettings = field(default_factory=OpenAISettings)
    llamacpp: LlamaCppSettings = field(default_factory=LlamaCppSettings)
    # Extra graders: {name: {any score.* key to override}}; each adds columns score_<name>, status_<name>, ...
    graders: dict[str, dict[str, Any]] = field(default_factory=dict)

    def grader(self, name: str) -> ScoreParams:
        """The settings of extra grader ``name``: the primary grader's, overridden by ``graders[name]``."""
        base = dataclasses.asdict(self)
        base.pop("graders")
        overrides = self.graders[name]
        merged = {**base, **overrides, **{k: {**base[k], **overrides.get(k, {})} for k in ("openai", "llamacpp")}}
        return build(ScoreParams, merged, f"score.graders.{name}")


@dataclass
class QualifyGraderParams:
    # name -> labelled file the graders are measured on (stage qualify_pairs@<name>): CaR's src,pos,neg pairs
    # (.csv) or JSONL rows with a 0/1 label
    pairs: dict[str, str] = field(default_factory=dict)


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
    column: str = "score_expected"


@dataclass
class SelectParams:
    alpagasus: AlpagasusSelect = field(default_factory=AlpagasusSelect)


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
class PairSet:
    """A file of labelled response pairs the judge is qualified on (``evaluation.labelled``)."""

    path: str
    kind: Literal["constructed", "human"] = "constructed"
    sample: int | None = None  # a seeded random N pairs of the file (None: all)
    seed: int = 0


@dataclass
class QualifyParams:
    sets: dict[str, PairSet] = field(default_factory=lambda: {"constructed": PairSet("data/sample/judge_pairs.jsonl")})


@dataclass
class JudgeParams:
    backend: Backend = "local"
    model: str = "smollm2-135m-instruct"
    prompt: str = "prompts/judge_mt_bench_prefill.txt"
    reference_prompt: str = "prompts/judge_reference_prefill.txt"  # pairs whose side b is `reference`
    decision: Literal["two_order", "debiased"] = "two_order"
    batch_size: int = 8
    max_new_tokens: int = 4
    min_prob_mass: float = 0.1  # verdict/score tokens need this much probability, else the reply text is parsed
    precision: Precision = "auto"
    max_length: int = 1024
    max_error_rate: float = 0.05  # the judge and qualify_judge stages fail above this share of failed requests
    openai: OpenAISettings = field(default_factory=OpenAISettings)
    llamacpp: LlamaCppSettings = field(default_factory=LlamaCppSettings)
    pairs: dict[str, JudgePair] = field(default_factory=dict)
    qualify: QualifyParams = field(default_factory=QualifyParams)


@dataclass
class ReportParams:
    bootstrap: int = 1000
    ci: float = 0.95


@dataclass
class MlflowParams:
    tracking_uri: str | None = None
    experiment: str = "ift-select"


Method = Literal["alpagasus", "car", "random", "full"]
METHOD_SETTINGS: dict[str, tuple[str, ...]] = {  # the ArmSpec fields each method reads
    "alpagasus": ("tau", "column"), "car": ("n1", "n2", "scorer"), "random": ("match", "size"), "full": ()}


@dataclass
class ArmSpec:
    """One arm: ``{method: alpagasus|car|random|full, <that method's settings>}``. A setting left out takes
    the top-level knob (``tau``, ``n1``, ``n2``) or its section's default (``select.alpagasus.column``,
    ``car.scorer``); ``random`` matches the size of the arm it names (``match``) or takes a fixed ``size``."""

    method: Method
    tau: float | None = None
    column: str | None = None
    n1: int | None = None
    n2: int | None = None
    scorer: Literal["grader", "iqs"] | None = None
    match: str | None = None
    size: int | None = None


@dataclass
class Params:
    tau: float = 3.5
    n1: int = 30
    n2: int = 1
    seed: int = 42
    base_model: str = "smollm2-135m-instruct"
    arms: dict[str, ArmSpec] = field(default_factory=dict)
    data: DataParams = field(default_factory=DataParams)
    score: ScoreParams = field(default_factory=ScoreParams)
    qualify_grader: QualifyGraderParams = field(default_factory=QualifyGraderParams)
    embed: EmbedParams = field(default_factory=EmbedParams)
    car: CarParams = field(default_factory=CarParams)
    select: SelectParams = field(default_factory=SelectParams)
    train: TrainParams = field(default_factory=TrainParams)
    generate: GenerateParams = field(default_factory=GenerateParams)
    judge: JudgeParams = field(default_factory=JudgeParams)
    report: ReportParams = field(default_factory=ReportParams)
    pricing: dict[str, Any] = field(default_factory=dict)
    mlflow: MlflowParams = field(default_factory=MlflowParams)
