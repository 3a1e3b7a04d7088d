"""Scale-out on GitHub Actions, against fakehub: dispatch, claim once, run, PR, merge.

The bot runs in-process (uvicorn) with ``ActionsBackend``; ``python -m action`` runs as a
subprocess with the environment an Actions runner provides. fakehub records the
``workflow_dispatch``; the test plays the Actions runner that picks it up.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml

from action.__main__ import write_outputs
from action.inputs import ActionInputs, RunContext
from bot.adapters.github import GitHubAdapter, GitHubError
from bot.core.protocol import CLAIM_SECRET_HEADER, JOB
from fakehub.rest.actions import on_workflow_dispatch
from fakehub.server import FakeHub
from tests.harness import CI, RUNNER_TOKEN, World, open_world

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_FILE = ".github/workflows/stoneforge-agent.yml"
RUN_ID = "4242"
SCRIPT = (
    '```stoneforge-script\n{"edits": [{"path": "hello.txt", "write": "hi\\n"}], '
    '"summary": "Wrote hello.txt"}\n```\n'
)


# -- the world -------------------------------------------------------------------------------

ACTIONS_CONFIG = {".github/stoneforge.yml": "version: 1\nbackend: actions\n"}


def actions_world(tmp: Path, files: dict[str, str]) -> contextlib.AbstractContextManager[World]:
    """The bot in-process (its public URL is the one workflow runs call back) on a repository
    whose config picks the Actions backend."""
    return open_world(tmp, bot=True, public_url=True, files=files, ci_command=CI, required=["ci"])


def claim(world: World, job_id: str, token: str) -> httpx.Response:
    """Claim a dispatched job the way the action does, with the job's one-time token."""
    return httpx.post(
        f"{world.bot_url}/actions/jobs/{quote(job_id, safe='')}/claim",
        headers={"Authorization": f"Bearer {token}"},
        json={},
        timeout=10,
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    files = {
        "README.md": "hello\n",
        **ACTIONS_CONFIG,
        WORKFLOW_FILE: (ROOT / WORKFLOW_FILE).read_text(),  # the real workflow, inputs and all
    }
    with actions_world(tmp_path, files) as w:
        yield w


@pytest.fixture
def world_without_workflow(tmp_path: Path) -> Iterator[World]:
    with actions_world(tmp_path, {"README.md": "hello\n", **ACTIONS_CONFIG}) as w:
        yield w


def _action_env(world: World, event: dict[str, Any], workspace: Path) -> dict[str, str]:
    inputs = event["inputs"]
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "INPUT_", "RUNNER_", "STONEFORGE_"))
    }
    return {
        **base,
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": event["repo"],
        "GITHUB_RUN_ID": RUN_ID,
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_SERVER_URL": world.hub.url,
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(workspace.parent / "output.txt"),
        "GITHUB_STEP_SUMMARY": str(workspace.parent / "summary.md"),
        "RUNNER_TEMP": str(workspace.parent / "runner-temp"),
        "INPUT_JOB_ID": inputs["job_id"],
        "INPUT_BOT_URL": inputs["bot_url"],
        "INPUT_JOB_TOKEN": inputs["job_token"],
        "INPUT_AGENT": "",
        "PYTHONSAFEPATH": "1",
        "STONEFORGE_SCRIPT_SLEEP_SCALE": "0",
    }


def _outputs(path: Path) -> dict[str, str]:
    """Parse ``$GITHUB_OUTPUT`` the way the Actions runner does (``name<<DELIM`` blocks)."""
    values: dict[str, str] = {}
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        name, sep, delimiter = lines[i].partition("<<")
        assert sep, f"not a delimited output: {lines[i]!r}"
        end = lines.index(delimiter, i + 1)
        values[name] = "\n".join(lines[i + 1 : end])
        i = end + 1
    return values


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.slow
def test_labeled_issue_runs_in_an_action_and_merges(world: World, tmp_path: Path) -> None:
    heard: list[dict[str, Any]] = []
    unsubscribe = on_workflow_dispatch(world.hub.hub, heard.append)
    number = world.file_labeled("Say hello", f"Please add hello.txt.\n\n{SCRIPT}")
    event = world.wait_until(
        lambda: world.hub.events("workflow_dispatch"), what="workflow dispatch"
    )[0]
    unsubscribe()
    assert heard, "the listener saw the dispatch"
    assert heard[0]["inputs"] == event["inputs"]
    assert event["repo"] == "octo/app"
    assert event["workflow"] == "stoneforge-agent.yml"
    assert event["ref"] == "main"
    inputs = event["inputs"]
    assert inputs["job_id"] == f"octo/app#{number}@1"
    assert inputs["bot_url"] == world.bot_url
    assert len(inputs["job_token"]) >= 40
    assert world.tasks()[number]["state"] == "running", "claimed in the store at dispatch"

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "action"],
        cwd=workspace,
        env=_action_env(world, event, workspace),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"::add-mask::{inputs['job_token']}" in done.stdout
    assert inputs["job_token"] not in done.stderr

    outputs = _outputs(tmp_path / "output.txt")
    assert outputs["outcome"] == "completed"
    assert outputs["job_id"] == inputs["job_id"]
    assert re.fullmatch(r"[0-9a-f]{40}", outputs["head_sha"])
    assert outputs["branch"].startswith(f"stoneforge/{number}-")
    summary = (tmp_path / "summary.md").read_text()
    assert f"octo/app#{number} completed" in summary
    assert outputs["head_sha"] in summary
    assert "Wrote hello.txt" in summary

    task = world.wait_until(
        lambda: world.tasks()[number]["state"] == "merged" and world.tasks()[number],
        timeout=60,
        what="merge",
    )
    assert task["head_sha"] == outputs["head_sha"]
    assert task["worker"] == f"actions/{RUN_ID}", "the claim records the run as the worker"
    with world.api() as api:
        pull = api.get(f"/repos/octo/app/pulls/{task['pr']}").json()
        readme = api.get("/repos/octo/app/contents/hello.txt").json()
    assert pull["merged"] is True
    assert pull["head"]["ref"] == outputs["branch"]
    assert f"Closes #{number}" in pull["body"]
    assert readme["type"] == "file"

    again = claim(world, inputs["job_id"], inputs["job_token"])
    assert again.status_code == 401, "the job token is single-use for claiming"
    wrong = claim(world, inputs["job_id"], "not-the-token")
    assert wrong.status_code == 401
    assert not world.backend.authorizes(inputs["job_id"], inputs["job_token"]), (
        "once the result is recorded the job token opens nothing"
    )
    assert not world.backend.authorizes(inputs["job_id"], "not-the-token")
    assert not world.backend.authorizes(f"octo/app#{number}@2", inputs["job_token"])


def test_a_wrong_token_cannot_claim_and_the_right_one_claims_once(
    world: World, tmp_path: Path
) -> None:
    number = world.file_labeled("Claim me", SCRIPT)
    event = world.wait_until(
        lambda: world.hub.events("workflow_dispatch"), what="workflow dispatch"
    )[0]
    job_id, token = event["inputs"]["job_id"], event["inputs"]["job_token"]
    assert claim(world, job_id, "x" * len(token)).status_code == 401
    assert not world.backend.authorizes(job_id, token), "no heartbeat before the claim"
    malformed = httpx.post(
        f"{world.bot_url}/actions/jobs/{quote(job_id, safe='')}/claim",
        headers={"Authorization": f"Bearer {token}"},
        json={"run_id": 4242, "surprise": True},
        timeout=10,
    )
    assert malformed.status_code == 422, malformed.text
    assert "surprise" in malformed.json()["message"]
    assert not world.backend.authorizes(job_id, token), "a refused body spends nothing"
    first = claim(world, job_id, token)
    assert first.status_code == 200
    job = JOB.validate_json(first.content)
    assert job.job_id == job_id
    assert job.issue == number
    assert job.token
    assert claim(world, job_id, token).status_code == 401
    assert world.backend.authorizes(job_id, token)
    url = f"{world.bot_url}/runner/jobs/{quote(job_id, safe='')}/heartbeat"
    bearer = {"Authorization": f"Bearer {token}"}
    unproven = httpx.post(url, headers=bearer, json={}, timeout=10)
    assert unproven.status_code == 403, "the job token alone is not the claim secret"
    heartbeat = httpx.post(
        url, headers={**bearer, CLAIM_SECRET_HEADER: job.claim_secret}, json={}, timeout=10
    )
    assert heartbeat.status_code == 200, heartbeat.text
    shared = {"Authorization": f"Bearer {RUNNER_TOKEN}", CLAIM_SECRET_HEADER: job.claim_secret}
    other = httpx.post(url, headers=shared, json={}, timeout=10)
    assert other.status_code == 403, "a runner that did not claim the job may not keep it"

    # A second run that gets a spent token fails cleanly, with outputs and a summary.
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "action"],
        cwd=workspace,
        env=_action_env(world, event, workspace),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "::error::" in done.stdout
    assert _outputs(tmp_path / "output.txt")["outcome"] == "unclaimed"
    assert "not claimed" in (tmp_path / "summary.md").read_text()


def test_runner_labels_reach_the_workflow_runs_on_input(tmp_path: Path) -> None:
    config = "version: 1\nbackend: actions\nruns_on: [self-hosted, GPU]\n"
    files = {
        "README.md": "hello\n",
        ".github/stoneforge.yml": config,
        WORKFLOW_FILE: (ROOT / WORKFLOW_FILE).read_text(),  # declares the optional input
    }
    with actions_world(tmp_path, files) as world:
        number = world.file_labeled("On a GPU", SCRIPT)
        event = world.wait_until(lambda: world.hub.events("workflow_dispatch"), what="dispatch")[0]
        assert event["inputs"]["job_id"] == f"octo/app#{number}@1"
        assert json.loads(event["inputs"]["runs_on"]) == ["gpu", "self-hosted"]
    workflow = yaml.safe_load((ROOT / WORKFLOW_FILE).read_text())
    assert workflow["jobs"]["agent"]["runs-on"] == "${{ fromJSON(inputs.runs_on) }}"
    declared = workflow[True]["workflow_dispatch"]["inputs"]["runs_on"]  # YAML 1.1: on -> True
    assert json.loads(declared["default"]) == ["ubuntu-latest"]


def test_missing_workflow_fails_the_task_with_the_reason(world_without_workflow: World) -> None:
    world = world_without_workflow
    number = world.file_labeled("No workflow", SCRIPT)
    task = world.wait_until(
        lambda: world.tasks().get(number, {}).get("state") == "failed" and world.tasks()[number],
        what="task failed",
    )
    assert "actions_dispatch_failed" in task["detail"]
    assert "stoneforge-agent.yml" in task["detail"]
    assert world.hub.events("workflow_dispatch") == []
    assert world.backend.pending() == []


# -- fakehub's dispatch route through the bot's adapter ---------------------------------------


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    with FakeHub(tmp_path / "hub") as fake:
        fake.create_user("octo", type="Organization")
        fake.create_repo(
            "octo",
            "app",
            {"README.md": "x\n", WORKFLOW_FILE: (ROOT / WORKFLOW_FILE).read_text()},
        )
        fake.create_repo("octo", "bare", {"README.md": "x\n"})
        yield fake


def _adapter(hub: FakeHub, permissions: dict[str, str]) -> tuple[GitHubAdapter, int]:
    app = hub.create_app(
        slug=f"a{len(hub.state.apps)}",
        webhook_url=None,
        webhook_secret="s",
        events=[],
        permissions=permissions,
    )
    inst = hub.install_app(app.id, "octo", ["app", "bare"])
    adapter = GitHubAdapter(app_id=app.id, private_key=app.private_key_pem, base_url=hub.api_url)
    return adapter, inst


async def test_dispatch_workflow_is_recorded_and_validated(hub: FakeHub) -> None:
    gh, inst = _adapter(hub, {"contents": "read", "actions": "write"})
    good = {"job_id": "octo/app#1@1", "bot_url": "http://bot", "job_token": "t"}
    try:
        await gh.dispatch_workflow(inst, "octo/app", "stoneforge-agent.yml", "main", good)
        [event] = hub.events("workflow_dispatch")
        assert event["repo"] == "octo/app"
        assert event["ref"] == "main"
        assert event["inputs"] == good

        cases = [
            ("octo/bare", "stoneforge-agent.yml", "main", good, 422),  # no file on that ref
            ("octo/app", "stoneforge-agent.yml", "nope", good, 422),  # no such ref
            ("octo/app", "stoneforge-agent.yml", "main", {**good, "extra": "x"}, 422),
            ("octo/app", "stoneforge-agent.yml", "main", {"job_id": "j"}, 422),  # required
            ("octo/app", "other.yml", "main", good, 422),
        ]
        for repo, workflow, ref, inputs, status in cases:
            with pytest.raises(GitHubError) as info:
                await gh.dispatch_workflow(inst, repo, workflow, ref, inputs)
            assert info.value.status == status, (repo, workflow, ref, inputs, info.value)
        assert len(hub.events("workflow_dispatch")) == 1
    finally:
        await gh.aclose()


async def test_dispatch_workflow_needs_actions_write(hub: FakeHub) -> None:
    gh, inst = _adapter(hub, {"contents": "write", "actions": "read"})
    inputs = {"job_id": "octo/app#1@1", "bot_url": "http://bot", "job_token": "t"}
    try:
        with pytest.raises(GitHubError) as info:
            await gh.dispatch_workflow(inst, "octo/app", "stoneforge-agent.yml", "main", inputs)
        assert info.value.status == 403
        assert hub.events("workflow_dispatch") == []
    finally:
        await gh.aclose()


# -- the action's own parts ------------------------------------------------------------------


def test_inputs_come_from_input_variables() -> None:
    inputs = ActionInputs.from_env(
        {
            "INPUT_JOB_ID": " octo/app#5@2 ",
            "INPUT_BOT_URL": "https://bot.example.com/",
            "INPUT_JOB_TOKEN": "secret-token",
            "INPUT_AGENT": "",
        }
    )
    assert inputs.job_id == "octo/app#5@2"
    assert inputs.bot_url == "https://bot.example.com"
    assert inputs.agent is None
    assert inputs.workers == 1
    assert "secret-token" not in repr(inputs)
    with pytest.raises(ValueError, match="bot_url"):
        ActionInputs.from_env({**_MIN, "INPUT_BOT_URL": "ftp://x"})
    with pytest.raises(ValueError, match="job_token"):
        ActionInputs.from_env({**_MIN, "INPUT_JOB_TOKEN": "  "})
    with pytest.raises(ValueError, match="job_id"):
        ActionInputs.from_env({k: v for k, v in _MIN.items() if k != "INPUT_JOB_ID"})


_MIN = {"INPUT_JOB_ID": "j", "INPUT_BOT_URL": "http://b", "INPUT_JOB_TOKEN": "t"}


def test_run_context_and_outputs_file(tmp_path: Path) -> None:
    ctx = RunContext.from_env(
        {"GITHUB_RUN_ID": "77", "GITHUB_OUTPUT": str(tmp_path / "out"), "RUNNER_TEMP": "/rt"}
    )
    assert ctx.worker == "actions/77"
    assert ctx.temp_dir == Path("/rt")
    write_outputs(ctx.output_file, {"outcome": "completed", "detail": "two\nlines"})
    assert _outputs(tmp_path / "out") == {"outcome": "completed", "detail": "two\nlines"}


def test_action_metadata_documents_inputs_and_permissions() -> None:
    import yaml

    meta = yaml.safe_load((ROOT / "action" / "action.yml").read_text())
    assert meta["runs"]["using"] == "composite"
    assert set(meta["inputs"]) == {"job_id", "bot_url", "job_token", "agent", "python-version"}
    assert all(spec.get("description") for spec in meta["inputs"].values())
    assert "contents: read" in meta["description"]
    for step in meta["runs"]["steps"]:
        assert "run" not in step or step.get("shell"), "composite run steps need a shell"
        assert "${{ inputs." not in step.get("run", ""), "inputs go through env, not the script"
    workflow = yaml.safe_load((ROOT / WORKFLOW_FILE).read_text())
    trigger = workflow[True]["workflow_dispatch"]["inputs"]  # YAML 1.1: `on` is True
    assert set(trigger) == {"job_id", "bot_url", "job_token", "runs_on"}
    assert not trigger["runs_on"]["required"], "a workflow without runner labels still works"
    assert workflow["permissions"] == {"contents": "read"}
    steps = workflow["jobs"]["agent"]["steps"]
    assert "add-mask" in steps[0]["run"], "the token is masked before anything else"
    assert any(s.get("uses") == "./action" for s in steps)
