from __future__ import annotations

import queue
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakehub.ci import CIResult, CIRunner
from fakehub.gitstore import GitStore, Identity

REPO = "octo/demo"


@pytest.fixture
def store(tmp_path: Path) -> GitStore:
    s = GitStore(tmp_path / "repos")
    s.create_repo(
        REPO,
        {
            "app/main.py": "VALUE = 42\n",
            "check.py": "import app.main\nassert app.main.VALUE == 42\n",
        },
        author=Identity("A", "a@example.com"),
    )
    return s


@pytest.fixture
def runner(store: GitStore, tmp_path: Path) -> Iterator[CIRunner]:
    r = CIRunner(store, tmp_path / "ci")
    yield r
    r.shutdown()


def run(runner: CIRunner, sha: str, command: list[str], **kwargs: object) -> CIResult:
    results: queue.Queue[CIResult] = queue.Queue()
    runner.submit(REPO, sha, command, results.put, **kwargs)  # type: ignore[arg-type]
    return results.get(timeout=30)


def test_passing_command_sees_the_checkout(store: GitStore, runner: CIRunner, tmp_path: Path):
    sha = store.ref_sha(REPO, "main")
    result = run(runner, sha, [sys.executable, "check.py"])
    assert result.conclusion == "success", result.output
    assert result.seconds >= 0
    # the checkout is removed afterwards
    assert list((tmp_path / "ci").iterdir()) == []


def test_failing_command_reports_output(store: GitStore, runner: CIRunner) -> None:
    sha = store.ref_sha(REPO, "main")
    code = "import sys; print('boom on stdout'); sys.stderr.write('bad\\n'); sys.exit(3)"
    result = run(runner, sha, [sys.executable, "-c", code])
    assert result.conclusion == "failure"
    assert "boom on stdout" in result.output
    assert "bad" in result.output


def test_environment_is_minimal_plus_given(
    store: GitStore, runner: CIRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPER_SECRET_TOKEN", "hunter2")
    sha = store.ref_sha(REPO, "main")
    code = (
        "import os, sys; print(sorted(os.environ));"
        "sys.exit(0 if 'SUPER_SECRET_TOKEN' not in os.environ and os.environ['EXTRA'] == 'x'"
        " and os.environ['GITHUB_SHA'] == sys.argv[1] else 1)"
    )
    result = run(runner, sha, [sys.executable, "-c", code, sha], env={"EXTRA": "x"})
    assert result.conclusion == "success", result.output
    assert "hunter2" not in result.output


def test_timeout_is_a_failure(store: GitStore, runner: CIRunner) -> None:
    sha = store.ref_sha(REPO, "main")
    result = run(runner, sha, [sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert result.conclusion == "failure"
    assert "timed out" in result.output
    assert result.seconds < 10


def test_errors_become_failures(runner: CIRunner) -> None:
    result = run(runner, "f" * 40, [sys.executable, "-c", "pass"])
    assert result.conclusion == "failure"
    assert "CI error" in result.output
    missing = run(runner, "f" * 40, ["definitely-not-a-command-xyz"])
    assert missing.conclusion == "failure"


def test_output_is_truncated_to_the_tail(store: GitStore, runner: CIRunner) -> None:
    sha = store.ref_sha(REPO, "main")
    code = "print('x' * 200_000); print('THE END')"
    result = run(runner, sha, [sys.executable, "-c", code])
    assert result.conclusion == "success"
    assert len(result.output) <= 64 * 1024
    assert result.output.rstrip().endswith("THE END")
