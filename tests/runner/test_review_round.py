"""A job carrying review feedback continues the pull request's branch, even as attempt 1.

A review round refunds the attempt on the bot (it is not a failed attempt), so the job can be
attempt 1 again; the runner must still build on the pushed work, never start from the base.
"""

from __future__ import annotations

from pathlib import Path

from runner.loop import Runner
from tests.harness.runner_bot import TOKEN, Bot, git, job, run_until


async def test_review_feedback_continues_from_the_pushed_branch(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    fake.jobs = [job(origin, 8, {"edits": [{"path": "a.txt", "write": "one\n"}]})]
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
    await run_until(runner, fake, 1)

    append = {"edits": [{"path": "a.txt", "append": "two\n"}]}
    fake.jobs = [job(origin, 8, append, review_feedback=["@lead: add two"])]
    fake.results.clear()
    await run_until(runner, fake, 1)
    assert fake.results["octo/demo#8@1"]["outcome"] == "completed"
    assert git("show", "stoneforge/8-task:a.txt", cwd=origin) == "one\ntwo\n"
