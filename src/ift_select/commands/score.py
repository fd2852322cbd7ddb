"""``ift-select score`` grades a pool through any backend; ``ift-select estimate`` prices a run before it is made.

    ift-select score --input data/sample/pool.jsonl --out scores.parquet --backend openai \\
        --base-url http://127.0.0.1:8000/v1 --model gpt-4o-mini --concurrency 16 --max-cost 2.50
    ift-select estimate --input data/sample/pool.jsonl --model gpt-4o-mini [--kind judge] [--batch]

Settings not given on the command line come from params.yaml (``score.*``, ``judge.*``, ``pricing``) when it
exists. The API key is read from the environment variable named by ``--api-key-env`` (never a flag). Replies
are cached (``--cache``, default ``.ift-cache/requests.sqlite`` at the repository root): a rerun after a crash,
a kill or a budget stop pays only for what is missing.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from ift_select.core.cli_util import command, emit
from ift_select.core.config import load_params
from ift_select.core.params import OpenAISettings, Params
from ift_select.core.io import write_parquet
from ift_select.core.paths import cache_dir


class BackendName(str, Enum):
    local = "local"
    openai = "openai"
    llamacpp = "llamacpp"


class Kind(str, Enum):
    score = "score"
    judge = "judge"


def _params(path: Path) -> Params:
    return load_params(path) if path.exists() else Params()


def _pool(path: Path, params: Params, max_rows: int | None) -> Any:
    from ift_select.data import load_pool

    d = params.data
    pool, _ = load_pool(path, format=d.format, field_map=d.field_map or None, on_invalid=d.on_invalid,
                        max_rows=max_rows if max_rows is not None else d.max_rows)
    return pool


def score(
    input: Path = typer.Option(..., "--input", help="Pool file (Alpaca JSON, JSONL, CSV, Parquet, Dolly)."),
    out: Path = typer.Option(..., "--out", help="Scores parquet to write."),
    backend: BackendName | None = typer.Option(None, "--backend", help="local | openai | llamacpp [score.backend]"),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint, e.g. "
                                        "http://127.0.0.1:8000/v1 [score.openai.base_url; none: OpenAI]"),
    model: str | None = typer.Option(None, "--model", help="Grader model [score.model]"),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, help="Requests in flight [16]"),
    max_cost: float | None = typer.Option(None, "--max-cost", min=0.0, help="Stop before spending more USD."),
    prompt: str | None = typer.Option(None, "--prompt", help="Prompt template file [score.prompt]"),
    dimension: str | None = typer.Option(None, "--dimension", help="What to rate [accuracy]"),
    cache: Path | None = typer.Option(None, "--cache", help="Request cache (SQLite) [.ift-cache/requests.sqlite]"),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="Variable holding the API key"),
    timeout_s: float | None = typer.Option(None, "--timeout", min=0.1, help="Seconds per request [60]"),
    max_retries: int | None = typer.Option(None, "--max-retries", min=0, help="Retries per request [6]"),
    batch_api: bool | None = typer.Option(None, "--batch-api/--no-batch-api", help="Use the OpenAI Batch API"),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=0, help="Reply tokens [score.max_new_tokens]"),
    max_rows: int | None = typer.Option(None, "--max-rows", min=1, help="Score only the first N rows."),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="Defaults for unset options."),
) -> None:
    """Grade every row of a pool 0-5; the last stdout line is JSON (rows, scored, unparsed, errors, requests,
    cache_hits, tokens_in, tokens_out, cost_usd, seconds). Exits 2 when max_cost stopped the run, 1 when the
    endpoint refused it (401/403/404), no row was graded or more than score.max_error_rate of the rows failed;
    what finished is written and cached either way."""
    from ift_select.llm import RequestCache
    from ift_select.llm.factory import backend_for, run_outcome
    from ift_select.llm.templates import load_template
    from ift_select.grading.alpagasus import check_failures, endpoint, score_pool, summarize

    start = time.perf_counter()
    params = _params(params_file)
    p = params.score
    oa = dataclasses.replace(p.openai, **{k: v for k, v in dict(
        base_url=base_url, concurrency=concurrency, max_cost_usd=max_cost, api_key_env=api_key_env,
        timeout_s=timeout_s, max_retries=max_retries, batch_api=batch_api).items() if v is not None})
    p = dataclasses.replace(p, openai=oa, **{k: v for k, v in dict(
        backend=backend.value if backend else None, model=model, prompt=prompt, dimension=dimension,
        max_new_tokens=max_tokens).items() if v is not None})
    cache_path = cache or cache_dir() / "requests.sqlite"
    grader = backend_for(p, params.pricing, cache_path)
    template = load_template(p.prompt)
    pool = _pool(input, params, max_rows)
    store = RequestCache(cache_path)
    try:
        scores, stats = score_pool(pool, grader, template, store, dimension=p.dimension,
                                   max_tokens=p.max_new_tokens, min_prob_mass=p.min_prob_mass,
                                   fractions=p.fractions, check=p.check)
    finally:
        store.close()
    write_parquet(out, scores)
    result = {**summarize(scores, stats), "out": str(out), "grader": grader.name, "prompt": p.prompt}
    info, problem = run_outcome(grader)
    problem = problem or check_failures(scores, endpoint(grader), p.max_error_rate)
    result.update(info)
    result["seconds"] = round(time.perf_counter() - start, 3)
    emit(result)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        raise typer.Exit(2 if problem.startswith("budget") else 1)


def _filler(tokens: int) -> str:
    return " ".join(["word"] * tokens)


def _judge_requests(input: Path, params: Params, prompt: str | None, response_tokens: int | None,
                    max_tokens: int | None, pairs: int | None, max_rows: int | None) -> tuple[list[Any], int]:
    """Judge requests as they will be sent (both orders, every pair), answers stood in by fillers of the
    generation length, since the answers do not exist yet."""
    from ift_select.data import load_test_set
    from ift_select.llm import ChatRequest
    from ift_select.llm.templates import load_template

    tests, _ = load_test_set(input, "estimate")
    if max_rows is not None:
        tests = tests.head(max_rows)
    template = load_template(prompt or params.judge.prompt)
    answer = _filler(response_tokens if response_tokens is not None else params.generate.max_new_tokens)
    n_pairs = pairs if pairs is not None else max(1, len(params.judge.pairs))
    requests = []
    for row in tests.itertuples(index=False):
        question = f"{row.instruction}\n\nInput: {row.input}" if row.input else row.instruction
        messages = template.render(question=question, answer_1=answer, answer_2=answer,
                                   reference=str(row.reference or answer))
        requests.append(ChatRequest(messages=messages, max_tokens=max_tokens or params.judge.max_new_tokens))
    return requests * (2 * n_pairs), len(tests)


@command
def estimate(
    input: Path = typer.Option(..., "--input", help="Pool file (score) or test-set file (judge)."),
    model: str = typer.Option(..., "--model", help="Model to price (a key of pricing in params.yaml)."),
    kind: Kind = typer.Option(Kind.score, "--kind", help="score: grade the pool; judge: both orders of every "
                              "pair on the test set"),
    prompt: str | None = typer.Option(None, "--prompt", help="Template [score.prompt / judge.prompt]"),
    dimension: str | None = typer.Option(None, "--dimension", help="Score: what to rate [score.dimension]"),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=0, help="Reply tokens per request"),
    response_tokens: int | None = typer.Option(None, "--response-tokens", min=0,
                                               help="Judge: tokens per answer [generate.max_new_tokens]"),
    pairs: int | None = typer.Option(None, "--pairs", min=1, help="Judge: arm pairs [len(judge.pairs)]"),
    batch: bool = typer.Option(False, "--batch", help="Price at Batch API rates."),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="HF tokenizer to count with (alias, dir, "
                                         "hub id) instead of tiktoken."),
    max_rows: int | None = typer.Option(None, "--max-rows", min=1),
    cache: Path | None = typer.Option(None, "--cache", help="The cache whose ledger holds past spend "
                                      "[.ift-cache/requests.sqlite]"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
) -> dict[str, Any]:
    """Price a score or judge run before it is made: prompt tokens counted with tiktoken (OpenAI models; needs
    its BPE files), else a HF tokenizer, else chars/4 (``token_count_method`` says which); reply tokens at
    their cap, so the figure is an upper bound for replies, not counting format-reminder retries (``score.check``'s
    questions are counted, one per row). Beside it:
    what the ledger says was already spent on that endpoint and model (``ledger_spent_usd``, all runs) and,
    under a budget, what is left (``remaining_usd``)."""
    from ift_select.llm.pricing import PriceTable, estimate as price_run, token_counter
    from ift_select.llm.templates import load_template
    from ift_select.grading.alpagasus import rating_requests

    params = _params(params_file)
    section = params.score if kind is Kind.score else params.judge
    if kind is Kind.score:
        p = params.score
        pool = _pool(input, params, max_rows)
        requests = rating_requests(pool, load_template(prompt or p.prompt), dimension or p.dimension,
                                   max_tokens if max_tokens is not None else p.max_new_tokens)
        if p.check:
            from ift_select.grading.check import check_request

            requests += [check_request(r, p.check) for r in requests]
        rows = len(pool)
    else:
        requests, rows = _judge_requests(input, params, prompt, response_tokens, max_tokens, pairs, max_rows)
    table = PriceTable.from_params(params.pricing)
    result = price_run(requests, model, table, token_counter(model, tokenizer), batch=batch)
    result.update(_ledger_view(section.openai, model, cache or cache_dir() / "requests.sqlite"))
    if not result["priced"]:
        refused = "; the run would be refused: this endpoint is paid" if result["paid"] else ""
        typer.echo(f"note: {model} is not in pricing (params.yaml): cost 0{refused}", err=True)
    return {"kind": kind.value, "rows": rows, "cost_usd": result["usd"], **result}


def _ledger_view(openai: OpenAISettings, model: str, cache: Path) -> dict[str, Any]:
    """Past spend on the endpoint and model (from the cache's ledger, when it exists) and the budget left."""
    from ift_select.llm.ledger import LedgerDB
    from ift_select.llm.urls import endpoint_name, is_paid

    scope = f"{endpoint_name(openai.base_url)}|{model}"
    spent = held = 0.0
    if cache.exists():
        db = LedgerDB(cache)
        spent, held = db.totals(scope)
        db.close()
    view = {"paid": is_paid(openai.paid, openai.base_url), "scope": scope, "ledger_spent_usd": round(spent, 6),
            "ledger_held_usd": round(held, 6), "max_cost_usd": openai.max_cost_usd}
    if openai.max_cost_usd is not None:
        view["remaining_usd"] = round(max(0.0, openai.max_cost_usd - spent - held), 6)
    return view


def register(app: typer.Typer) -> None:
    app.command("score")(command(score))
    app.command("estimate")(estimate)
