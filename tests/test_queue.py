"""Queued experiments sharing one request cache and one MLflow store (issue 14), on the tiny pipeline
(tests/audit_repo.py) whose grader and judge sit behind a loopback OpenAI-compatible server that counts the
requests it receives per request body.

The user has switched the grader to gpt-4o and committed; then queues a tau sweep and one more experiment
whose grader endpoint (a second server) is down, and runs the queue two at a time:

    dvc exp run --queue -S tau=2.0,3.0,4.0      (DVC's grid: three experiments, named by DVC)
    dvc exp run --queue -n down -S tau=3.0 -S score.openai.base_url=<a closed port>
    dvc queue start -j 2

Every experiment rescores the pool with the new grader: the same paid requests, two experiments at a time.
Checked: the good experiments finish and each has its MLflow run under its own name; the failed one shows in
`dvc queue status`, `dvc exp show` and MLflow with its cause; the cache passes `PRAGMA integrity_check` and
the server saw every request body once; selections, judgments and metrics equal those of the same
experiment run alone (tau 2.0, which shared the queue's first two slots with tau 3.0, under the same name in a
copy of the repository with its own cache); with the endpoint back, a rerun of the failed experiment sends
exactly the requests that had never been answered; and `ift-select compare` reads the sweep back from MLflow:
WS with its interval against tau (the threshold ablation).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml

from audit_repo import PAIR, AuditServer, baseline, commit_all, copy_repo, dvc, env, git, run

pytestmark = pytest.mark.slow

SWEEP = (2.0, 3.0, 4.0)  # the threshold ablation, queued as one grid
ALONE = 2.0  # also run alone: it overlapped tau 3.0 in the queue (each one reruns most of the pipeline)
DOWN = "down"  # tau 3.0 graded through the second endpoint, which is down; queued after the sweep
GRADER = "gpt-4o"
LATENCY = 0.5  # 36 grading requests at concurrency 4: ~5 s of sending, so the first two experiments overlap
# Per-run accounting (who paid, how long it took) legitimately differs between a queue and one at a time.
VOLATILE = {"seconds", "requests", "cache_hits", "cost_usd", "cost_usd_total", "tokens_in", "tokens_out",
            "budget", "tokens_per_s", "cost", "not_sent", "attempts", "retries", "fraction_requests",
            "seconds_per_pair", "results_cost_usd",
            "figures"}  # the report plots the experiments MLflow holds so far: more in a queue than alone
FIGURES: dict[str, Any] = {}


def report_figures(what: str) -> None:
    """The figures on stderr and, when IFT_SELECT_TEST_FIGURES names a file, appended to it as a JSON line
    (pytest keeps a passing test's stderr to itself)."""
    print(f"{what}: {FIGURES}", file=sys.stderr)
    target = os.environ.get("IFT_SELECT_TEST_FIGURES")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps({"test": "test_queue", "what": what, **FIGURES}) + "\n")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1"


def wait_for_queue(root: Path, names: tuple[str, ...], timeout: float = 2400) -> dict[str, str]:
    """Poll `dvc queue status` until every named task has finished; {name: status}."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [line.split() for line in dvc(root, "queue", "status").stdout.splitlines()]
        status = {row[1]: row[-1] for row in rows if len(row) >= 4 and row[1] in names}
        if len(status) == len(names) and all(s in ("Success", "Failed") for s in status.values()):
            return status
        if time.monotonic() > deadline:
            dvc(root, "queue", "stop", "--kill", check=False)
            raise AssertionError(f"queue did not finish in {timeout:.0f} s: {status}")
        time.sleep(3)


def experiments(root: Path) -> dict[str, dict[str, Any]]:
    """`dvc exp show --json`, by experiment name: {"rev", "params", "outs", "error", "state"}."""
    out: dict[str, dict[str, Any]] = {}
    for base in json.loads(dvc(root, "exp", "show", "--json").stdout):
        for exp in base.get("experiments") or []:
            rev = exp["revs"][0]
            data = rev.get("data") or {}
            out[exp["name"]] = {"rev": rev.get("rev"), "params": (data.get("params") or {}).get("params.yaml", {}),
                                "outs": data.get("outs") or {}, "error": rev.get("error"),
                                "state": (exp.get("executor") or {}).get("state")}
    return out


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    return value


def results(root: Path, exp: dict[str, Any]) -> dict[str, Any]:
    """What an experiment produced: the hash of every cached output (selections, judgments, scores, models,
    generations) and every metrics file without its per-run accounting."""
    outs = {path: o["hash"] for path, o in exp["outs"].items() if o.get("use_cache")}
    files = git(root, "ls-tree", "-r", "--name-only", exp["rev"], "metrics", "reports/summary.json").split()
    metrics = {path: stable(json.loads(git(root, "show", f"{exp['rev']}:{path}"))) for path in files}
    return {"outs": outs, "metrics": metrics}


def client(root: Path) -> mlflow.MlflowClient:
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    return mlflow.MlflowClient()


def parent_run(root: Path, name: str):
    (run,) = mlflow.search_runs(experiment_names=["ift-select"], output_format="list", filter_string=(
        f"tags.`ift_select.exp` = '{name}' and tags.`ift_select.kind` = 'experiment'"))
    return run


def stage_runs(root: Path, parent) -> list:
    return mlflow.search_runs(experiment_names=["ift-select"], output_format="list",
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")


def stage_metrics(root: Path, exp: dict[str, Any], stage: str) -> dict[str, Any]:
    return json.loads(git(root, "show", f"{exp['rev']}:metrics/{stage}.json"))


@pytest.fixture(scope="module")
def queued(tmp_path_factory):
    base, _ = baseline(tmp_path_factory)
    srv, spare = AuditServer(latency=LATENCY), AuditServer(latency=LATENCY)
    endpoint = srv.start()
    down_port = closed_port()
    work = tmp_path_factory.mktemp("queue")
    prepared = copy_repo(base, work / "prepared")
    params = yaml.safe_load((prepared / "params.yaml").read_text())
    params["score"]["model"] = GRADER
    for section in ("score", "judge"):
        params[section]["openai"]["base_url"] = endpoint
    (prepared / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit_all(prepared, f"grade with {GRADER}")
    root, single = copy_repo(prepared, work / "queued"), copy_repo(prepared, work / "one_at_a_time")
    try:
        started = time.perf_counter()
        earlier = set(experiments(root))  # experiments the copied repository already holds
        dvc(root, "exp", "run", "--queue", "-S", "tau=" + ",".join(map(str, SWEEP)))
        sweep = {name: float(exp["params"]["data"]["tau"]) for name, exp in experiments(root).items()
                 if name not in earlier}
        assert sorted(sweep.values()) == list(SWEEP), sweep
        dvc(root, "exp", "run", "--queue", "-n", DOWN, "-S", "tau=3.0", "-S", f"score.openai.base_url={url(down_port)}")
        dvc(root, "queue", "start", "-j", "2")
        status = wait_for_queue(root, (*sweep, DOWN))
        FIGURES["queue_seconds"] = round(time.perf_counter() - started, 1)
        queue_attempts = dict(srv.attempts)
        exps = experiments(root)
        logs = dvc(root, "queue", "logs", DOWN, check=False)
        queue_status = dvc(root, "queue", "status").stdout

        spare.port = down_port  # the endpoint is back
        spare.start()
        started = time.perf_counter()
        dvc(root, "exp", "run", "--queue", "-n", f"{DOWN}-rerun", "-S", "tau=3.0",
            "-S", f"score.openai.base_url={url(down_port)}")
        dvc(root, "queue", "start", "-j", "1")
        rerun_status = wait_for_queue(root, (f"{DOWN}-rerun",))
        FIGURES["rerun_seconds"] = round(time.perf_counter() - started, 1)
        rerun = {"status": rerun_status, "main": dict(srv.attempts), "spare": dict(spare.attempts),
                 "exp": experiments(root)[f"{DOWN}-rerun"]}

        srv.attempts.clear()
        started = time.perf_counter()
        alone = next(name for name, tau in sweep.items() if tau == ALONE)
        dvc(single, "exp", "run", "-n", alone, "-S", f"tau={ALONE}")  # the name is recorded in lineage.json
        FIGURES["one_at_a_time_seconds"] = round(time.perf_counter() - started, 1)
        single_attempts = dict(srv.attempts)
    finally:
        dvc(root, "queue", "stop", "--kill", check=False)
        srv.stop()
        spare.stop()
    return {"root": root, "single": single, "sweep": sweep, "alone": alone, "status": status, "exps": exps,
            "queue_attempts": queue_attempts,
            "single_attempts": single_attempts, "down_url": url(down_port), "logs": logs.stdout + logs.stderr,
            "queue_status": queue_status, "rerun": rerun}


def test_every_experiment_finishes_and_is_tracked_under_its_name(queued):
    root, exps, sweep = queued["root"], queued["exps"], queued["sweep"]
    assert queued["status"] == {**dict.fromkeys(sweep, "Success"), DOWN: "Failed"}, queued["queue_status"]
    for name, tau in sweep.items():
        assert float(exps[name]["params"]["data"]["tau"]) == tau
    client(root)
    for name in sweep:
        parent = parent_run(root, name)
        assert parent.info.run_name == name and parent.info.status == "FINISHED"
        stages = {r.info.run_name: r for r in stage_runs(root, parent)}
        assert {"score", "select@alpagasus", f"judge@{PAIR}", "report"} <= set(stages)
        assert all(r.info.status == "FINISHED" for r in stages.values())
        assert parent.data.metrics["selected.alpagasus"] == stage_metrics(root, exps[name], "select_alpagasus")["selected"]
    assert not list((root / ".dvc/tmp").rglob("mlflow.db")) and not list((root / ".dvc/tmp").rglob("requests.sqlite"))


def test_the_shared_cache_is_intact_and_no_request_was_paid_twice(queued):
    root, exps, attempts, sweep = queued["root"], queued["exps"], queued["queue_attempts"], queued["sweep"]
    with sqlite3.connect(root / ".ift-cache" / "requests.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    twice = {key: n for key, n in attempts.items() if n > 1}
    assert not twice, f"{len(twice)} request bodies were sent more than once"
    figures = {name: {stage: stage_metrics(root, exps[name], stage)
                      for stage in ("score", f"judge_{PAIR}", "qualify")}  # qualify: the judge's qualification
               for name in sweep}
    sent = sum(m["requests"] for stages in figures.values() for m in stages.values())
    cached = sum(m["cache_hits"] for stages in figures.values() for m in stages.values())
    assert sent == len(attempts) == sum(attempts.values())
    scores = [figures[name]["score"] for name in sweep]
    assert sum(m["requests"] for m in scores) == 36 and all(m["requests"] + m["cache_hits"] == 36 for m in scores)
    FIGURES.update(sent=sent, cached=cached, paid_twice=sum(n - 1 for n in attempts.values()),
                   score_requests={sweep[name]: figures[name]["score"]["requests"] for name in sweep})
    report_figures(f"queue of {len(sweep) + 1} at -j 2")


def test_results_equal_those_of_the_experiment_run_alone(queued):
    root, single, name = queued["root"], queued["single"], queued["alone"]
    assert results(root, queued["exps"][name]) == results(single, experiments(single)[name]), name
    assert not {k: n for k, n in queued["single_attempts"].items() if n > 1}


def test_a_failed_experiment_shows_its_cause_and_the_others_finish(queued):
    root, down = queued["root"], queued["exps"][DOWN]
    cause_pattern = queued["down_url"]
    assert "Failed" in next(line for line in queued["queue_status"].splitlines() if f" {DOWN} " in line)
    assert f"error: stage score: openai:{GRADER} at {cause_pattern}: no row was graded" in queued["logs"]
    assert down["state"] == "failed" or down["error"], down
    client(root)
    parent = parent_run(root, DOWN)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["ift_select.failed_stage"] == "score"
    cause = parent.data.tags["ift_select.error"]
    assert cause.startswith(f"score: openai:{GRADER} at {cause_pattern}: no row was graded") and "connection" in cause
    (failed,) = [r for r in stage_runs(root, parent) if r.info.run_name == "score"]
    assert failed.info.status == "FAILED" and failed.data.tags["error"] == cause.removeprefix("score: ")


def test_a_rerun_with_the_endpoint_back_pays_only_for_what_is_missing(queued):
    root, rerun = queued["root"], queued["rerun"]
    assert rerun["status"] == {f"{DOWN}-rerun": "Success"}
    spare = rerun["spare"]
    assert len(spare) == 36 and set(spare.values()) == {1}  # the grading requests never answered, once each
    new_on_main = {k: n - queued["queue_attempts"].get(k, 0) for k, n in rerun["main"].items()}
    assert all(n == 1 for n in rerun["main"].values())  # the judge's requests were paid in the queue already
    score = stage_metrics(root, rerun["exp"], "score")
    judge = stage_metrics(root, rerun["exp"], f"judge_{PAIR}")
    assert score["requests"] == 36 and judge["requests"] == sum(n > 0 for n in new_on_main.values())
    assert judge["requests"] + judge["cache_hits"] == judge["rows"]
    FIGURES.update(rerun_score_requests=score["requests"], rerun_judge_requests=judge["requests"],
                   rerun_judge_cache_hits=judge["cache_hits"])
    report_figures(f"rerun of {DOWN}")


def test_compare_draws_ws_against_the_swept_tau(queued, tmp_path):
    """The queued sweep is AlpaGasus' threshold ablation: one point per experiment, WS and its interval."""
    root = queued["root"]
    figure = tmp_path / "compare.png"
    done = run([sys.executable, "-m", "ift_select.cli", "compare", "--param", "tau", "--out", str(figure)], root,
               env(root))
    result = json.loads(done.stdout.strip().splitlines()[-1])
    by_name = {p["experiment"]: p for p in result["points"]}
    assert result["pair"] == PAIR and DOWN not in by_name  # the failed experiment has no WS to draw
    for name, tau in queued["sweep"].items():
        point = by_name[name]
        assert point["tau"] == tau and point["ws_low"] <= point["ws"] <= point["ws_high"], point
    assert figure.stat().st_size > 0 and len(figure.with_suffix(".csv").read_text().splitlines()) > len(SWEEP)
