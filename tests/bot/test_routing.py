"""Runner labels route tasks: a task whose configuration asks for labels goes only to a runner
that carries them, and a registered runner's labels are the ones it registered with."""

from __future__ import annotations

from typing import Any

import httpx

from bot.runner_api import new_registration_token
from bot.store import Store
from runner.registration import register
from tests.harness import RUNNER_TOKEN, World, wait_until

CONFIG = "version: 1\nruns_on_by_label:\n  needs-gpu: [GPU]\n"


def _runner(world: World, name: str, labels: list[str]) -> str:
    store = Store(f"sqlite:///{world.tmp / 'bot.db'}")
    try:
        reg = new_registration_token(store, ttl_s=60)
    finally:
        store.close()
    creds = register(
        world.bot_url, reg, name=name, labels=labels, capacity=1,
        config_path=world.tmp / f"{name}.json",
    )  # fmt: skip
    return creds.runner_token


def _claim(url: str, token: str, labels: list[str] | None = None, wait_s: float = 1.0) -> Any:
    body: dict[str, Any] = {"worker": "w0", "wait_s": wait_s}
    if labels is not None:
        body["labels"] = labels
    resp = httpx.post(
        f"{url}/runner/claim",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=wait_s + 10,
    )
    assert resp.status_code in (200, 204), resp.text
    return resp.json()["job"] if resp.status_code == 200 else None


def test_tasks_go_only_to_runners_with_the_labels_they_need(world: World) -> None:
    world.push_main({".github/stoneforge.yml": CONFIG})
    world.settle()  # the push is handled: the task below would not need a GPU otherwise
    plain, gpu_issue = world.file("Plain work"), world.file("Train the model")
    with world.api() as api:
        api.post(
            f"/repos/octo/app/issues/{gpu_issue['number']}/labels",
            json={"labels": ["needs-gpu", "agent-ready"]},
        ).raise_for_status()
    world.label(plain["number"])
    wait_until(lambda: len(world.tasks()) == 2, what="two tasks")
    assert world.tasks()[gpu_issue["number"]]["runs_on"] == ["gpu"]  # casefolded

    cpu = _runner(world, "cpu-box", ["linux"])
    gpu = _runner(world, "gpu-box", ["linux", "gpu"])
    first = wait_until(lambda: _claim(world.bot_url, cpu), what="a job for the CPU runner")
    assert first["issue"] == plain["number"]
    # The GPU task is ready, but not for this runner: even claiming "gpu" in the body is
    # ignored for a registered runner, whose labels are the registered ones.
    assert _claim(world.bot_url, cpu, labels=["gpu"], wait_s=0.5) is None
    assert world.tasks()[gpu_issue["number"]]["state"] == "queued"
    second = wait_until(lambda: _claim(world.bot_url, gpu), what="a job for the GPU runner")
    assert second["issue"] == gpu_issue["number"]
    assert world.tasks()[gpu_issue["number"]]["worker"] == "gpu-box/w0"


def test_the_shared_token_runner_states_its_labels(world: World) -> None:
    world.push_main({".github/stoneforge.yml": "version: 1\nruns_on: [Linux]\n"})
    world.settle()
    issue = world.file("Any work")
    world.label(issue["number"])
    wait_until(lambda: len(world.tasks()) == 1, what="a task")
    assert _claim(world.bot_url, RUNNER_TOKEN, labels=["macos"], wait_s=0.5) is None
    job = wait_until(
        lambda: _claim(world.bot_url, RUNNER_TOKEN, labels=["LINUX", "x64"]), what="a job"
    )
    assert job["issue"] == issue["number"]
