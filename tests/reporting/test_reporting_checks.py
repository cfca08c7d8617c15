"""The pure builders of check run and deployment payloads, and the wait_for_checks decision, on plain data."""

from __future__ import annotations

import pytest

from bot.deploys import Deploy, DeployState
from bot.reporting import checks
from bot.reporting.gates import GateDecision, gate_from_suites
from tests.github_openapi import validate_request


def make(state: DeployState = DeployState.QUEUED, *, kind: str = "deploy", **fields) -> Deploy:
    values = dict(id="d-0123456789ab", key="k", installation_id=1, owner="octo", repo="app", sha="f" * 40,
                  ref="refs/heads/main", default_branch="main", clone_url="https://github.com/octo/app.git",
                  environment="production", kind=kind, state=state, trigger="push", actor="mona", untrusted=False,
                  pr_number=None, rollback_task_definition=None, superseded_by=None, finished_at=None)
    values.update(fields)
    return Deploy(**values)


def test_check_run_create_is_queued_and_names_the_deploy():
    body = checks.check_run_create(make())
    assert (body["name"], body["head_sha"], body["external_id"], body["status"]) == ("Easy Deploy", "f" * 40, "d-0123456789ab", "queued")
    assert "conclusion" not in body and "actions" not in body and "details_url" not in body
    validate_request("POST", "/repos/octo/app/check-runs", body)


def test_build_checks_are_named_apart_and_have_no_release_stage():
    body = checks.check_run_create(make(kind="build", pr_number=3))
    assert body["name"] == "Easy Deploy / build"
    assert "release" not in body["output"]["summary"]


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0s"), (42.4, "42s"), (185, "3m 05s"), (3725, "1h 02m")])
def test_durations_read_like_people_write_them(seconds, shown):
    assert checks.duration({"started_at": 100.0, "finished_at": 100.0 + seconds}) == shown
    assert checks.duration({"started_at": 100.0, "finished_at": None}) == "–"


@pytest.mark.parametrize("state", list(DeployState))
def test_every_state_builds_a_valid_update(state):
    deploy = make(state, superseded_by="d-new" if state is DeployState.CANCELLED else None, finished_at=1.0e9)
    body = checks.check_run_update(deploy, "https://app.apps.example.com", "https://logs.example.com/1", newer_sha="e" * 40)
    validate_request("PATCH", "/repos/octo/app/check-runs/1", body)
    assert body["status"] == checks.check_status(state)
    assert ("conclusion" in body) is state.finished
    status = checks.deployment_status(deploy, "https://app.apps.example.com", "https://logs.example.com/1", newer_sha="e" * 40)
    validate_request("POST", "/repos/octo/app/deployments/1/statuses", status)


def test_actions_fit_githubs_limits_and_only_completed_deploys_offer_them():
    for action in checks.ACTIONS:
        assert len(action["label"]) <= checks.MAX_ACTION_LABEL
        assert len(action["identifier"]) <= checks.MAX_ACTION_IDENTIFIER
        assert len(action["description"]) <= checks.MAX_ACTION_DESCRIPTION
    assert "actions" not in checks.check_run_update(make(DeployState.RUNNING), None, None)
    assert "actions" not in checks.check_run_update(make(DeployState.SUCCEEDED, kind="build"), None, None)
    assert [a["identifier"] for a in checks.check_run_update(make(DeployState.FAILED), None, None)["actions"]] == ["redeploy", "rollback"]


def test_every_output_field_is_cut_to_65535_characters():
    huge = "y" * 200_000
    deploy = make(DeployState.FAILED, result={"failure": {"stage": "build", "summary": huge, "what_to_do": huge,
                                                          "log_lines": [huge] * 60}})
    output = checks.check_output(deploy, None)
    assert all(len(value) <= checks.MAX_FIELD for value in output.values())
    assert output["summary"].endswith("(cut to GitHub's size limit)\n")
    assert output["text"].endswith("y\n```")
    validate_request("PATCH", "/repos/octo/app/check-runs/1", checks.check_run_update(deploy, None, None))


def test_a_failure_without_advice_still_says_what_to_do():
    deploy = make(DeployState.FAILED, result={"failure": {"summary": "The build failed."}})
    assert checks.check_summary(deploy, None).startswith(
        "The build failed.\n\n**What to do:** Read the log lines below, fix the cause and push again.")


def test_a_log_line_cannot_close_the_code_block():
    deploy = make(DeployState.FAILED, result={"failure": {"summary": "x", "log_lines": ["```", "after"]}})
    assert checks.check_text(deploy).count("```") == 2


def test_deployment_payloads():
    body = checks.deployment_create(make(environment="staging"))
    assert body["environment"] == "staging" and body["production_environment"] is False
    assert body["auto_merge"] is False and body["required_contexts"] == [] and body["payload"] == {"deploy_id": "d-0123456789ab"}
    validate_request("POST", "/repos/octo/app/deployments", body)
    long = make(DeployState.FAILED, result={"failure": {"summary": "z" * 500}})
    status = checks.deployment_status(long, None, None)
    assert status["state"] == "failure" and len(status["description"]) == checks.MAX_STATUS_DESCRIPTION
    assert checks.deployment_status(make(DeployState.FAILED, result={"internal_error": True}), None, None)["state"] == "error"
    assert checks.deployment_status(make(DeployState.WAITING), None, None)["state"] == "queued"
    assert "environment_url" not in checks.deployment_status(make(DeployState.RUNNING), "https://a.example.com", None)


def suite(app_id: int, status: str, conclusion: str | None = None, *, name: str = "CI", runs: int | None = 1) -> dict:
    return {"id": app_id, "status": status, "conclusion": conclusion, "latest_check_runs_count": runs,
            "app": {"id": app_id, "slug": name.lower(), "name": name}}


def test_gate_decisions():
    assert gate_from_suites([], 1).decision is GateDecision.GO
    assert gate_from_suites([suite(1, "queued", name="Easy Deploy")], 1).decision is GateDecision.GO  # our own suite
    assert gate_from_suites([suite(2, "queued", runs=0)], 1).decision is GateDecision.GO  # an app that never runs
    gate = gate_from_suites([suite(2, "in_progress"), suite(3, "completed", "success", name="Lint")], 1)
    assert (gate.decision, gate.waiting_for, gate.reason) == (GateDecision.WAIT, ["CI"], "waiting for CI")
    gate = gate_from_suites([suite(2, "in_progress"), suite(3, "completed", "timed_out", name="Lint")], 1)
    assert (gate.decision, gate.reason) == (GateDecision.CANCEL, "other checks did not pass: Lint (timed_out)")
    assert gate_from_suites([suite(2, "completed", "neutral"), suite(3, "completed", "skipped")], 1).decision is GateDecision.GO
