"""A runner killed with SIGKILL in the middle of a task: the sprint still merges, in order, once.

The runner is a real process (``python -m stoneforge runner``) in its own session. While at least
one agent is mid-run, the runner's whole process group gets SIGKILL; its agents run in sessions of
their own (``runner/process.py``), so they survive it as orphans and are killed here too (found
by their working directory inside the runner's work dir). A fresh runner process then starts on
the same work dir. The bot must notice the lost lease, hand the interrupted tasks out again, and
every task must still merge green in dependency order, with nothing merged twice.

Asserted from fakehub's event log and ``git log`` of ``main`` where possible, and from the
runners' own logs for "which jobs started".
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from demo.pipeline import FULL, Pipeline
from demo.sample import SPRINT
from tests.harness import wait_until
from tests.harness.kill import kill_runner_and_orphans, pids_working_in
from tests.harness.sprint import assert_merged_in_dependency_order, jobs_started, wait_merged

pytestmark = pytest.mark.slow

# The runner heartbeats every 10 s and has no switch for it, so the lease must be longer than
# that (a 6 s lease would expire under every live task over 6 s); 15 s keeps the test short.
LEASE_S = 15.0
SLEEP_SCALE = 2.0  # agents sleep 4-10 s: long enough to be caught mid-run
SPRINT_TIMEOUT_S = 180.0


def agents_mid_run(work: Path) -> list[str]:
    """Jobs the runner started whose agent has not finished and is running right now.

    "Running" is a live ``script_agent`` process with its directory in the runner's work dir
    (the transcript files are not a live signal: the runner writes them buffered).
    """
    log = (work / "runner.log").read_text(errors="replace")
    started = re.findall(r"job_started worker=\S+ job=(\S+)", log)
    finished = set(re.findall(r"agent_finished job=(\S+) try=", log))
    agents = [
        pid
        for pid in pids_working_in((work / "runner").resolve())
        if b"runner.agents.script_agent" in _cmdline(pid)
    ]
    return [job for job in started if job not in finished] if agents else []


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_runner_sigkilled_mid_task_still_merges_every_task_once(tmp_path: Path) -> None:
    pipe = Pipeline(
        work=tmp_path,
        workers=3,
        agent="script",
        extra_env={"STONEFORGE_LEASE_S": str(LEASE_S), "STONEFORGE_RECONCILE_INTERVAL_S": "5"},
        runner_env={"STONEFORGE_SCRIPT_SLEEP_SCALE": str(SLEEP_SCALE)},
        runner_session=True,
    )
    try:
        pipe.start()
        pipe.file_sprint()
        victims = wait_until(lambda: agents_mid_run(tmp_path), 60, "an agent mid-run")
        time.sleep(0.5)  # well inside its sleep (4 s at least): the agent is working
        old_log = (tmp_path / "runner.log").read_text(errors="replace")
        in_flight = set(re.findall(r"job_started worker=\S+ job=(\S+)", old_log)) - set(
            re.findall(r"result_sent job=(\S+)", old_log)
        )
        killed_at = time.time()
        orphans = kill_runner_and_orphans(pipe)
        assert in_flight >= set(victims)
        assert pipe.tasks(), "the bot is still up"
        pipe.restart_runner()
        tasks = wait_merged(pipe, SPRINT_TIMEOUT_S)
        events = pipe.hub.events()
        main_log = pipe.git_log()
    finally:
        pipe.stop()
    (tmp_path / "fakehub-events.json").write_text(json.dumps(events, indent=1, default=str))

    assert orphans >= 1, "agents run in their own session, so the kill orphaned at least one"
    assert_merged_in_dependency_order(events, tasks)

    # The interrupted tasks were dispatched again, after the kill, as a new attempt.
    killed_issues = {int(job.rsplit("@", 1)[0].rsplit("#", 1)[1]) for job in in_flight}
    started = jobs_started(tmp_path)
    for issue in killed_issues:
        assert tasks[issue]["attempt"] >= 2, tasks[issue]
        assert started[f"{FULL}#{issue}"] >= 2, started
        assert tasks[issue]["dispatched_at"] > killed_at, tasks[issue]
    # Nothing else was run twice: the restart did not shake loose any task that was not lost.
    for issue in set(tasks) - killed_issues:
        assert started[f"{FULL}#{issue}"] == 1, (issue, started)

    # Nothing merged twice: one merge per task, one pull request per task, one commit on main.
    merges = [e for e in events if e["type"] == "merge"]
    assert Counter(e["pr"] for e in merges) == {t["pr"]: 1 for t in tasks.values()}
    opened = Counter(e["head"] for e in events if e["type"] == "pr_opened")
    assert sorted(opened.values()) == [1] * len(SPRINT), opened
    subjects = main_log.splitlines()
    assert len(subjects) == 1 + len(SPRINT), main_log
    for task in tasks.values():
        assert sum(f"(#{task['pr']})" in s for s in subjects) == 1, (task["pr"], main_log)


def test_pids_working_in_finds_a_process_by_its_directory(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"], cwd=tmp_path, start_new_session=True)
    try:
        wait_until(lambda: sleeper.pid in pids_working_in(tmp_path), 5, "the sleeper")
        assert sleeper.pid not in pids_working_in(tmp_path / "elsewhere")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sleeper.pid not in pids_working_in(tmp_path)
