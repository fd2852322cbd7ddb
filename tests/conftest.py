from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Test this checkout's code, also in the subprocesses tests start (stages, CLI), whichever checkout the
# active Python's editable install points at.
sys.path.insert(0, str(REPO / "src"))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)


# Under pytest-xdist (`make test` runs two workers), tests that share one expensive repository run on the
# same worker, so each session fixture is built once: the audit repository (API grader and judge, built by
# audit_repo.baseline) and the traced tiny pipeline (audited_pipeline).
XDIST_GROUPS = {"audit": ("test_key_never_leaks_pipeline", "test_tracking", "test_lineage", "test_queue",
                          "test_reliability"),
                "pipeline": ("test_dvc_deps", "test_pipeline_e2e")}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks
def pytest_collection_modifyitems(config, items):
    group_of = {module: group for group, modules in XDIST_GROUPS.items() for module in modules}
    for item in items:
        group = group_of.get(item.path.stem)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def shared_data():
    """Path to ../shared/data; tests that need a file skip naming it when it is absent (a user's clone)."""

    def get(relative: str) -> Path:
        path = SHARED_DATA / relative
        if not path.exists():
            pytest.skip(f"missing {path} (public data beside the repository; see README)")
        return path

    return get


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def audited_pipeline(tmp_path_factory):
    """The tiny pipeline after one `dvc repro` run under IFT_SELECT_AUDIT_DIR (each stage traced with strace
    and its params reads logged), committed as a user would. Returns (root, audit dir). Tests that change
    the repository work on a copy (pipeline_repo.copy_repo)."""
    import shutil

    from pipeline_repo import commit_all, make_repo, pipeline_env, run

    if shutil.which("strace") is None:  # CI installs it (make test): there a missing strace is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "strace is not installed (apt-get install strace; `make test` installs it)")
    root = make_repo(tmp_path_factory.mktemp("pipeline") / "repo")
    audit_dir = tmp_path_factory.mktemp("audit")
    env = {**pipeline_env(root), "IFT_SELECT_AUDIT_DIR": str(audit_dir)}
    out = run([sys.executable, "-m", "dvc", "repro"], root, env)
    (audit_dir / "repro.log").write_text(out.stdout + out.stderr)
    commit_all(root, "tiny pipeline: first run")
    return root, audit_dir


@pytest.fixture
def fake_openai():
    """``start(**settings) -> (server, base URL)``: tests/fake_openai.py's loopback server, stopped afterwards."""
    from fake_openai import FakeOpenAI

    started = []

    def start(**settings):
        server = FakeOpenAI(**settings)
        started.append(server)
        return server, server.start()

    yield start
    for server in started:
        server.stop()
