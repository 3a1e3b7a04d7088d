"""The wire protocol (``bot/core/protocol.py``): its golden schema, the documented examples, the
unions, and the values it refuses."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import TypeAdapter, ValidationError

from bot.core.protocol import (
    JOB,
    RESULT,
    ActionsClaim,
    ClaimAnswer,
    ClaimRequest,
    CompletedResult,
    FailedResult,
    FailureReason,
    FixChecksJob,
    HandoffReason,
    HandoffResult,
    Heartbeat,
    ImplementJob,
    Job,
    JobResult,
    PlanJob,
    RateLimitedResult,
    RebaseJob,
    Refusal,
    Registered,
    Registration,
    ResolveConflictsJob,
    ReviewJob,
    ReviseJob,
    TranscriptUpload,
    TryRecord,
    Usage,
    failure_reason,
    handoff_reason,
    wire_schema,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema" / "job.schema.json"
REGENERATE = (
    'python -c "import json; from bot.core.protocol import wire_schema; '
    'print(json.dumps(wire_schema(), indent=2))" > schema/job.schema.json'
)
DOCS = ROOT / "docs" / "architecture.md"
SECTION = "## bot ↔ runner protocol (HTTP, JSON)"
MESSAGES: dict[str, TypeAdapter[Any]] = {
    "ClaimRequest": TypeAdapter(ClaimRequest),
    "ClaimAnswer": TypeAdapter(ClaimAnswer),
    "Job": JOB,
    "Heartbeat": TypeAdapter(Heartbeat),
    "TranscriptUpload": TypeAdapter(TranscriptUpload),
    "JobResult": RESULT,
    "ActionsClaim": TypeAdapter(ActionsClaim),
    "Registration": TypeAdapter(Registration),
    "Registered": TypeAdapter(Registered),
    "Refusal": TypeAdapter(Refusal),
}
SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"


def job_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "kind": "implement", "job_id": "octo/demo#5@1", "claim_secret": "s" * 32,
        "repo": "octo/demo", "issue": 5, "title": "t", "branch": "stoneforge/5-t",
        "clone_url": "http://hub/octo/demo.git", "token": "ghs_x", "agent": {"name": "script"},
    }  # fmt: skip
    return fields | overrides


# --- the golden schema ------------------------------------------------------------------------


def test_golden_schema_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == wire_schema(), (
        f"schema/job.schema.json is stale; regenerate it with: {REGENERATE}"
    )


def test_schema_is_valid_and_names_every_message() -> None:
    schema = wire_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) == set(MESSAGES)


# --- the documented examples ------------------------------------------------------------------


def _examples() -> list[tuple[str, str]]:
    """(model name, JSON text) for every JSON block of the protocol section of the docs."""
    text = DOCS.read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"(?:<!-- protocol: (\w+) -->\n)?```json\n(.*?)\n```", section, re.S)
    assert blocks, "the protocol section has no JSON examples"
    unnamed = [body[:60] for name, body in blocks if not name]
    assert not unnamed, f"name each example's model with <!-- protocol: Model -->: {unnamed}"
    return [(name, body) for name, body in blocks]


EXAMPLES = _examples()


@pytest.mark.parametrize(("name", "body"), EXAMPLES, ids=[f"{n}-{i}" for i, (n, _) in
                                                          enumerate(EXAMPLES)])  # fmt: skip
def test_every_documented_example_is_a_valid_message(name: str, body: str) -> None:
    assert name in MESSAGES, f"unknown message {name}"
    data = json.loads(body)
    adapter = MESSAGES[name]
    value = adapter.validate_python(data)
    # Nothing in the example is dropped or changed on the way in (a typo in a runner-received
    # model would otherwise be ignored silently).
    assert adapter.dump_python(value, mode="json", by_alias=True, exclude_unset=True) == data
    schema = wire_schema()
    jsonschema.validate(data, {"$ref": f"#/$defs/{name}", "$defs": schema["$defs"]})


def test_the_docs_show_every_message_and_outcome() -> None:
    assert {name for name, _ in EXAMPLES} == set(MESSAGES)
    outcomes = {json.loads(body)["outcome"] for name, body in EXAMPLES if name == "JobResult"}
    assert outcomes == {"completed", "handoff", "rate_limited", "failed", "planned", "reviewed"}
    kinds = {
        json.loads(body).get("job", json.loads(body)).get("kind")
        for name, body in EXAMPLES
        if name in ("Job", "ClaimAnswer") and json.loads(body).get("job", {}) is not None
    }
    assert {"implement", "revise", "plan", "rebase", "resolve_conflicts", "review"} <= kinds


# --- the unions -------------------------------------------------------------------------------


def test_jobs_discriminate_on_kind() -> None:
    assert type(JOB.validate_python(job_fields())) is ImplementJob
    revise = JOB.validate_python(job_fields(kind="revise", review_feedback=["@a: fix"]))
    assert type(revise) is ReviseJob
    assert revise.continues_branch
    with pytest.raises(ValidationError, match="head"):
        JOB.validate_python(job_fields(kind="review", pull_number=3))
    sha = "a" * 40
    reviewing = JOB.validate_python(job_fields(kind="review", head=sha, pull_number=3, round=2))
    assert (type(reviewing), reviewing.round, reviewing.max_rounds) == (ReviewJob, 2, 2)
    with pytest.raises(ValidationError, match="check_failures"):
        JOB.validate_python(job_fields(kind="fix_checks"))
    fix = JOB.validate_python(job_fields(kind="fix_checks", check_failures=["ci: failure"]))
    assert type(fix) is FixChecksJob
    assert fix.continues_branch
    with pytest.raises(ValidationError, match="expected_head"):
        JOB.validate_python(job_fields(kind="rebase"))
    rebase = JOB.validate_python(job_fields(kind="rebase", expected_head="a" * 40))
    assert type(rebase) is RebaseJob
    assert rebase.continues_branch
    resolve = JOB.validate_python(
        job_fields(kind="resolve_conflicts", expected_head="a" * 40, conflicts=["a.py"], round=2)
    )
    assert type(resolve) is ResolveConflictsJob
    assert (resolve.conflicts, resolve.round, resolve.continues_branch) == (("a.py",), 2, True)
    with pytest.raises(ValidationError, match="plan_id"):
        JOB.validate_python(job_fields(kind="plan"))
    plan = JOB.validate_python(
        job_fields(kind="plan", plan_id="p1", guidance="small steps", branch="")
    )
    assert type(plan) is PlanJob
    assert not plan.continues_branch
    assert plan.branch == ""
    with pytest.raises(ValidationError, match="union_tag_not_found|Unable to extract tag"):
        JOB.validate_python({k: v for k, v in job_fields().items() if k != "kind"})
    with pytest.raises(ValidationError, match="review_feedback"):
        JOB.validate_python(job_fields(kind="revise", review_feedback=[]))
    answer = ClaimAnswer.model_validate({"job": job_fields(kind="revise", review_feedback=["x"])})
    assert isinstance(answer.job, ReviseJob)


def test_which_jobs_continue_the_pushed_branch() -> None:
    def job(**overrides: Any) -> Job:
        return JOB.validate_python(job_fields(**overrides))

    assert not job().continues_branch
    assert job(attempt=2).continues_branch
    assert not job(attempt=2, restart=True).continues_branch
    assert not job(kind="revise", review_feedback=["x"], restart=True).continues_branch


def test_results_discriminate_on_outcome() -> None:
    cases: list[tuple[dict[str, Any], type[JobResult]]] = [
        ({"outcome": "completed", "head_sha": SHA}, CompletedResult),
        ({"outcome": "handoff", "reason": "stalled"}, HandoffResult),
        ({"outcome": "rate_limited", "agent": "claude", "retry_at": None}, RateLimitedResult),
        ({"outcome": "failed", "reason": "crash", "detail": "boom"}, FailedResult),
    ]
    for fields, model in cases:
        result = RESULT.validate_python({"branch": "b", **fields})
        assert type(result) is model
        dumped = RESULT.dump_python(result, mode="json", by_alias=True)
        assert RESULT.validate_python(dumped) == result, "what the runner sends, the bot reads"
    with pytest.raises(ValidationError):
        RESULT.validate_python({"outcome": "merged", "branch": "b"})
    with pytest.raises(ValidationError):  # a completed result names no other reason
        RESULT.validate_python({"outcome": "completed", "reason": "quota", "head_sha": SHA,
                                "branch": "b"})  # fmt: skip
    with pytest.raises(ValidationError):  # a completed result has pushed a head
        RESULT.validate_python({"outcome": "completed", "branch": "b"})


# --- refused values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"agent_seconds": math.nan}, "agent_seconds"),
        ({"agent_seconds": math.inf}, "agent_seconds"),
        ({"agent_seconds": -1.0}, "agent_seconds"),
        ({"usage": {"cost_usd": math.nan}}, "cost_usd"),
        ({"usage": {"cost_usd": -0.01}}, "cost_usd"),
        ({"usage": {"input_tokens": -5}}, "input_tokens"),
        ({"usage": {"input_tokens": 1.5}}, "input_tokens"),
        ({"head_sha": "not-a-sha"}, "head_sha"),
        ({"pr_number": 3}, "pr_number"),  # the bot's models refuse unknown keys
        ({"attempt_log": [{"try": 0, "outcome": "completed"}]}, "try"),
        ({"attempt_log": [{"try": 1, "outcome": "exploded"}]}, "outcome"),
    ],
)
def test_a_result_with_a_bad_value_is_refused(fields: dict[str, Any], where: str) -> None:
    base = {"outcome": "completed", "head_sha": SHA, "branch": "b"}
    with pytest.raises(ValidationError) as caught:
        RESULT.validate_python(base | fields)
    assert where in str(caught.value)


def test_other_messages_refuse_bad_values() -> None:
    with pytest.raises(ValidationError, match="claim_secret"):
        JOB.validate_python(job_fields(claim_secret="short"))
    with pytest.raises(ValidationError, match="issue"):
        JOB.validate_python(job_fields(issue=0))
    with pytest.raises(ValidationError, match="wait_s"):
        ClaimRequest.model_validate({"wait_s": math.inf})
    with pytest.raises(ValidationError, match="capacity"):
        ClaimRequest.model_validate({"capacity": 0})
    with pytest.raises(ValidationError, match="text"):
        TranscriptUpload.model_validate({"try": 1, "outcome": "completed"})
    with pytest.raises(ValidationError, match="extra"):
        Heartbeat.model_validate({"lease": 10})
    with pytest.raises(ValidationError, match="finite"):
        TryRecord.model_validate({"try": 1, "outcome": "failed", "seconds": math.nan})
    with pytest.raises(ValidationError, match="cost_usd"):
        Usage.model_validate({"cost_usd": -1})


def test_a_newer_bots_extra_fields_are_ignored_by_the_runner() -> None:
    job = JOB.validate_python(job_fields(priority="high", agent={"name": "x", "effort": 3}))
    assert job.agent.name == "x"
    assert "priority" not in job.model_dump()


def test_adapter_reasons_map_to_the_protocols_enums() -> None:
    assert failure_reason("tests_failed") is FailureReason.TESTS_FAILED
    assert failure_reason("exit status 3") is FailureReason.OTHER
    assert handoff_reason("max_turns") is HandoffReason.MAX_TURNS
    assert handoff_reason("my_command_gave_up") is HandoffReason.OTHER


def test_registration_refuses_a_newer_protocol_and_bad_fields() -> None:
    ok = Registration.model_validate({"registration_token": "t", "labels": ["gpu"]})
    assert ok.protocol == 1
    assert ok.capacity == 1
    with pytest.raises(ValidationError, match="capacity"):
        Registration.model_validate({"registration_token": "t", "capacity": 0})
    with pytest.raises(ValidationError, match="registration_token"):
        Registration.model_validate({"name": "x"})
