"""``ift-select judge``: compare two arms' generations in both orders; ``ift-select judge agreement``: qualify a
judge against people (PandaLM's 999 human-annotated pairs) before paying for an evaluation.

Judge settings start from the ``judge`` section of ``--params`` (default ./params.yaml, when it exists; the
built-in defaults otherwise) and every flag given overrides its setting.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from ift_select.core.cli_util import command
from ift_select.core.config import load_params
from ift_select.core.params import JudgeParams, Params
from ift_select.core.errors import ConfigError, DataError
from ift_select.core.io import read_parquet, write_parquet, write_text

def _settings(params_path: Path, **flags: Any) -> tuple[JudgeParams, Params]:
    params = load_params(params_path) if params_path.exists() else Params()
    judge = params.judge
    openai_keys = {"base_url", "concurrency", "max_cost_usd", "api_key_env"}
    top = {k: v for k, v in flags.items() if v is not None and k not in openai_keys}
    nested = {k: v for k, v in flags.items() if v is not None and k in openai_keys}
    if top.get("backend") not in (None, "local", "openai", "llamacpp"):
        raise ConfigError(f"--backend: {top['backend']!r} is not one of 'local', 'openai', 'llamacpp'")
    if top.get("decision") not in (None, "two_order", "debiased"):
        raise ConfigError(f"--decision: {top['decision']!r} is not one of 'two_order', 'debiased'")
    judge = dataclasses.replace(judge, **top, openai=dataclasses.replace(judge.openai, **nested))
    return judge, params


def _run_setup(judge: JudgeParams, params: Params, no_cache: bool, prompt: str | None = None) -> tuple[Any, Any, Any]:
    from ift_select.llm import RequestCache
    from ift_select.llm.factory import backend_for
    from ift_select.core.paths import cache_dir
    from ift_select.llm.templates import load_template

    template = load_template(prompt or judge.prompt)
    cache = None if no_cache else RequestCache(cache_dir() / "requests.sqlite")
    return backend_for(judge, params.pricing), template, cache


def _read_frame(path: Path) -> pd.DataFrame:
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no .parquet files")
    frames = [read_parquet(f) if f.suffix == ".parquet" else pd.read_json(f, lines=True) for f in files]
    return pd.concat(frames, ignore_index=True)


def _write_judgments(out: Path, frame: pd.DataFrame) -> None:
    if out.suffix == ".jsonl":
        write_text(out, frame.to_json(orient="records", lines=True, force_ascii=False))
    else:
        write_parquet(out, frame)


# Judge settings, shared by `judge` and `judge agreement` (None: keep the params file's value).
BACKEND = typer.Option(None, "--backend", help="local | openai | llamacpp")
MODEL = typer.Option(None, "--model", help="Judge model (alias, HF dir, .gguf, or API model name).")
BASE_URL = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint (openai backend).")
API_KEY_ENV = typer.Option(None, "--api-key-env", help="Environment variable holding the API key.")
PROMPT = typer.Option(None, "--prompt", help="Judge template (prompts/judge_*.txt; with --vs-reference the "
                      "default is judge.reference_prompt).")
DECISION = typer.Option(None, "--decision", help="two_order (the papers' rule) | debiased (both orders' "
                        "verdict log-odds averaged).")
CONCURRENCY = typer.Option(None, "--concurrency", min=1, help="Parallel API requests.")
MAX_COST = typer.Option(None, "--max-cost", min=0.0, help="Stop before spending more than this (USD).")
BATCH_SIZE = typer.Option(None, "--batch-size", min=1, help="Local backend batch size.")
MAX_NEW_TOKENS = typer.Option(None, "--max-new-tokens", min=0, help="Reply tokens per judgment.")
PARAMS = typer.Option(Path("params.yaml"), "--params", help="Read judge.* settings from here (if it exists).")
NO_CACHE = typer.Option(False, "--no-cache", help="Do not read or write the request cache.")


def main(
    ctx: typer.Context,
    a: Path | None = typer.Option(None, "--a", help="Generations of arm A (Parquet/JSONL: test_set, item_id, "
                                  "instruction, input, output)."),
    b: Path | None = typer.Option(None, "--b", help="Generations of arm B (omit with --vs-reference)."),
    out: Path | None = typer.Option(None, "--out", help="Judgments file to write (.parquet or .jsonl)."),
    tests: Path | None = typer.Option(None, "--tests", help="Prepared test items (parquet file or directory): "
                                      "adds categories and reference answers."),
    vs_reference: bool = typer.Option(False, "--vs-reference", help="Judge arm A against the test set's "
                                      "reference answers (CaR's protocol; needs --tests)."),
    backend: str | None = BACKEND, model: str | None = MODEL, base_url: str | None = BASE_URL,
    api_key_env: str | None = API_KEY_ENV, prompt: str | None = PROMPT, concurrency: int | None = CONCURRENCY,
    max_cost: float | None = MAX_COST, batch_size: int | None = BATCH_SIZE,
    max_new_tokens: int | None = MAX_NEW_TOKENS, decision: str | None = DECISION, params_path: Path = PARAMS,
    no_cache: bool = NO_CACHE,
    bootstrap: int = typer.Option(1000, min=0, help="Bootstrap resamples for the WS/WR/QS intervals."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
) -> None:
    """Judge arm A against arm B (or the references) in both orders; the last line is JSON with the run's
    counts and the figures per test set. Arms are named after the generation files' stems."""
    if ctx.invoked_subcommand is not None:
        return
    flags = dict(backend=backend, model=model, base_url=base_url, api_key_env=api_key_env, prompt=prompt,
                 concurrency=concurrency, max_cost_usd=max_cost, batch_size=batch_size,
                 max_new_tokens=max_new_tokens, decision=decision)
    command(_judge)(a, b, out, tests, vs_reference, bootstrap, seed, params_path, no_cache, flags)


def _judge(a: Path | None, b: Path | None, out: Path | None, tests: Path | None, vs_reference: bool,
           bootstrap: int, seed: int, params_path: Path, no_cache: bool, flags: dict[str, Any]) -> dict[str, Any]:
    from ift_select.evaluation.pairwise import REFERENCE_ARM, judge_pair, reference_generations
    from ift_select.evaluation.metrics import summarize

    if a is None or out is None or (b is None and not vs_reference):
        raise ConfigError("judge: give --a, --b (or --vs-reference with --tests) and --out")
    test_items = _read_frame(tests) if tests else None
    gen_a = _read_frame(a)
    if vs_reference:
        if test_items is None:
            raise ConfigError("--vs-reference needs --tests (test items with reference answers)")
        gen_b, arm_b = reference_generations(test_items), REFERENCE_ARM
    else:
        assert b is not None
        gen_b, arm_b = _read_frame(b), b.stem
    judge, params = _settings(params_path, **flags)
    prompt = judge.reference_prompt if vs_reference and flags.get("prompt") is None else judge.prompt
    backend, template, cache = _run_setup(judge, params, no_cache, prompt)
    judgments, stats = judge_pair(gen_a, gen_b, a.stem, arm_b, backend, template, cache, tests=test_items,
                                  max_tokens=judge.max_new_tokens, min_prob_mass=judge.min_prob_mass,
                                  decision=judge.decision)
    _write_judgments(out, judgments)
    return {**stats.to_dict(), "out": str(out), "judge": backend.name, "prompt": prompt, "decision": judge.decision,
            "by_test_set": summarize(judgments, bootstrap=bootstrap, seed=seed)}


def agreement(
    human: Path = typer.Option(..., "--human", help="PandaLM's testset-v1.json (999 human-annotated pairs), or "
                               "any file in its format (JSON list or JSONL; annotator1..3 or one label)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Judge only the first N pairs (quick runs)."),
    sample: int | None = typer.Option(None, "--sample", min=1, help="Judge a seeded random N pairs instead."),
    seed: int = typer.Option(0, "--seed", help="Seed of --sample."),
    out: Path | None = typer.Option(None, "--out", help="Also write the figures here (JSON)."),
    backend: str | None = BACKEND, model: str | None = MODEL, base_url: str | None = BASE_URL,
    api_key_env: str | None = API_KEY_ENV, prompt: str | None = PROMPT, concurrency: int | None = CONCURRENCY,
    max_cost: float | None = MAX_COST, batch_size: int | None = BATCH_SIZE,
    max_new_tokens: int | None = MAX_NEW_TOKENS, decision: str | None = DECISION, params_path: Path = PARAMS,
    no_cache: bool = NO_CACHE,
) -> dict[str, Any]:
    """Agreement of the configured judge with the 2-of-3 human majority (with and without ties), Cohen's kappa,
    first-position and flip rates, the longer-answer share, the "longer response wins" baseline and the bundled
    GPT-3.5/PandaLM-7B judges' figures on the same pairs; ``seconds`` is the judging time."""
    from ift_select.evaluation.agreement import measure_agreement
    from ift_select.core.io import write_json

    judge, params = _settings(params_path, backend=backend, model=model, base_url=base_url,
                              api_key_env=api_key_env, prompt=prompt, concurrency=concurrency,
                              max_cost_usd=max_cost, batch_size=batch_size, max_new_tokens=max_new_tokens,
                              decision=decision)
    backend_obj, template, cache = _run_setup(judge, params, no_cache)
    result = measure_agreement(human, backend_obj, template, cache, limit=limit, sample=sample, seed=seed,
                               decision=judge.decision, max_tokens=judge.max_new_tokens,
                               min_prob_mass=judge.min_prob_mass)
    typer.echo(f"judge {result['judge']} ({judge.decision}): agreement {result['agreement']} (kappa "
               f"{result['kappa']}) on {result['n']} pairs; non-tie pairs {result['agreement_non_tie']} vs "
               f"longer-wins baseline {result['baseline_longer']}; flip rate {result['flip_rate']}, longer-answer "
               f"share {result['longer_share']}; GPT-3.5 {(result['gpt35'] or {}).get('agreement')}; "
               f"{result['seconds']} s ({result['seconds_per_pair']} s per pair)")
    if out:
        write_json(out, result)
    return result


def register(app: typer.Typer) -> None:
    judge_app = typer.Typer(invoke_without_command=True, help=__doc__)
    judge_app.callback()(main)
    judge_app.command("agreement")(command(agreement))
    app.add_typer(judge_app, name="judge")
