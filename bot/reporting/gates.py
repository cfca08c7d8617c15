"""The wait_for_checks gate: deploy only once every other check suite on the commit passed."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.deploys import Deploy
from bot.github import GitHubApp

# Conclusions that mean "this commit did not pass": the deploy is cancelled.
BLOCKING_CONCLUSIONS = frozenset({"failure", "cancelled", "timed_out", "action_required", "startup_failure", "stale"})


class GateDecision(StrEnum):
    """What the deploy should do now."""

    GO = "go"
    WAIT = "wait"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Gate:
    """The decision, why, and which apps' suites are still running."""

    decision: GateDecision
    reason: str
    waiting_for: list[str] = field(default_factory=list)


def suite_name(suite: dict[str, Any]) -> str:
    """The name people know a suite by: its app's name."""
    app = suite.get("app") or {}
    return str(app.get("name") or app.get("slug") or f"check suite {suite.get('id')}")


def gate_from_suites(suites: list[dict[str, Any]], own_app_id: int) -> Gate:
    """Decide from the commit's check suites, ignoring Easy Deploy's own (a pure function)."""
    pending, failed = [], []
    for suite in suites:
        if (suite.get("app") or {}).get("id") == own_app_id:
            continue
        if suite.get("status") != "completed":
            # GitHub makes a suite for every app subscribed to checks on every push, and
            # one whose app never creates a run stays queued forever: ignore those.
            if suite.get("status") == "queued" and suite.get("latest_check_runs_count") == 0:
                continue
            pending.append(suite_name(suite))
        elif suite.get("conclusion") in BLOCKING_CONCLUSIONS:
            failed.append(f"{suite_name(suite)} ({suite.get('conclusion')})")
    if failed:
        return Gate(GateDecision.CANCEL, "other checks did not pass: " + ", ".join(sorted(failed)))
    if pending:
        names = sorted(set(pending))
        return Gate(GateDecision.WAIT, "waiting for " + ", ".join(names), names)
    return Gate(GateDecision.GO, "every other check suite on this commit passed")


async def checks_gate(github: GitHubApp, deploy: Deploy) -> Gate:
    """Read the commit's check suites from GitHub and decide whether the deploy may go."""
    data = await github.request(
        deploy.installation_id, "GET", f"/repos/{deploy.owner}/{deploy.repo}/commits/{deploy.sha}/check-suites",
        params={"per_page": "100"},
    )
    suites = data.get("check_suites", []) if isinstance(data, dict) else []
    return gate_from_suites(suites, github.app_id)
