"""Pure builders of what GitHub is told about a deploy: check run and deployment payloads.

Every function here takes the deploy record (and what the reporter looked up
for it) and returns the exact JSON body to send; no I/O. The same record always
gives the same body, which is what makes reporting idempotent: the reporter
sends a body only when it differs from the last one it sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot.deploys import Deploy, DeployState

CHECK_NAME_DEPLOY = "Easy Deploy"
CHECK_NAME_BUILD = "Easy Deploy / build"
CHECK_NAME_ROLLBACK_NOTE = "Easy Deploy / roll back"

# GitHub's limits (REST docs for checks and deployment statuses).
MAX_FIELD = 65_535  # output.title, output.summary and output.text, each
MAX_STATUS_DESCRIPTION = 140
MAX_ACTION_LABEL = 20
MAX_ACTION_IDENTIFIER = 20
MAX_ACTION_DESCRIPTION = 40
LOG_TAIL_LINES = 50

STAGE_ORDER = ("identity", "source", "build", "release")
BUILD_STAGES = ("identity", "source", "build")


class CheckAction(StrEnum):
    """The buttons on a completed deploy check run (their identifiers)."""

    REDEPLOY = "redeploy"
    ROLLBACK = "rollback"


ACTIONS = (
    {"label": "Redeploy", "description": "Deploy this commit again", "identifier": CheckAction.REDEPLOY.value},
    {"label": "Roll back", "description": "Go back to the previous good deploy", "identifier": CheckAction.ROLLBACK.value},
)

_CONCLUSIONS = {
    DeployState.SUCCEEDED: "success",
    DeployState.FAILED: "failure",
    DeployState.CANCELLED: "cancelled",
}


def check_name(deploy: Deploy) -> str:
    """`Easy Deploy` for deploys and rollbacks, `Easy Deploy / build` for pull request builds."""
    return CHECK_NAME_BUILD if deploy.kind == "build" else CHECK_NAME_DEPLOY


def check_status(state: DeployState) -> str:
    """The check run status of a deploy state: queued, in_progress or completed."""
    if state.finished:
        return "completed"
    return "in_progress" if state is DeployState.RUNNING else "queued"


def cut(text: str, limit: int = MAX_FIELD, *, keep: str = "head") -> str:
    """`text` cut to `limit` characters, saying so; `keep="tail"` keeps the end (for logs)."""
    if len(text) <= limit:
        return text
    marker = "\n… (cut to GitHub's size limit)\n" if keep == "head" else "… (earlier lines cut to GitHub's size limit)\n"
    room = max(limit - len(marker), 0)
    return text[:room] + marker if keep == "head" else marker + text[len(text) - room:]


def short_sha(sha: str | None) -> str:
    """The 7-character form people recognise."""
    return (sha or "")[:7]


def iso(ts: float | None) -> str | None:
    """A store timestamp as GitHub's ISO 8601 (UTC, seconds)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(stage: dict[str, Any]) -> str:
    """How long a finished stage took (`42s`, `3m 05s`); a dash while it has not finished."""
    started, finished = stage.get("started_at"), stage.get("finished_at")
    if started is None or finished is None:
        return "–"
    secs = max(int(round(finished - started)), 0)
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m {secs % 60:02d}s"
    return f"{secs // 3600}h {secs % 3600 // 60:02d}m"


def stage_rows(deploy: Deploy) -> list[tuple[str, str, str]]:
    """(stage, state, duration) for every stage of this kind of deploy, in pipeline order."""
    names = list(BUILD_STAGES if deploy.kind == "build" else STAGE_ORDER)
    names += [n for n in deploy.stages if n not in names]
    rows = []
    for name in names:
        stage = deploy.stages.get(name) or {}
        state = stage.get("state") or ("cancelled" if deploy.state is DeployState.CANCELLED else "pending")
        rows.append((name, state, duration(stage)))
    return rows


def stage_table(deploy: Deploy) -> str:
    """The stages as a Markdown table."""
    lines = ["| Stage | State | Duration |", "| --- | --- | --- |"]
    lines += [f"| {name} | {state} | {took} |" for name, state, took in stage_rows(deploy)]
    return "\n".join(lines)


def current_stage(deploy: Deploy) -> str | None:
    """The stage running now, else the last one that started."""
    started = None
    for name, state, _ in stage_rows(deploy):
        if state == "running":
            return name
        if state != "pending":
            started = name
    return started


def failure_of(deploy: Deploy) -> dict[str, Any]:
    """The failure record of a failed deploy (empty when there is none)."""
    return (deploy.result or {}).get("failure") or {}


def is_internal_error(deploy: Deploy) -> bool:
    """True when the deploy failed inside the service itself, not in the customer's code."""
    return bool((deploy.result or {}).get("internal_error"))


def cancel_reason(deploy: Deploy, newer_sha: str | None) -> str:
    """One sentence on why a deploy was cancelled."""
    what = "build" if deploy.kind == "build" else "deploy"
    if deploy.superseded_by:
        newer = f"commit {short_sha(newer_sha)}" if newer_sha else f"{what} {deploy.superseded_by}"
        return f"Superseded by a newer {what} of {newer}."
    reason = (deploy.result or {}).get("cancel_reason") or (deploy.result or {}).get("reason")
    return f"Cancelled: {reason.rstrip('.')}." if reason else f"This {what} was cancelled."


def _noun(deploy: Deploy) -> str:
    return {"build": "Build", "rollback": "Rollback"}.get(deploy.kind, "Deploy")


def check_title(deploy: Deploy, newer_sha: str | None = None) -> str:
    """The one-line title of the check run output."""
    noun = _noun(deploy)
    match deploy.state:
        case DeployState.QUEUED:
            return f"{noun} queued"
        case DeployState.WAITING:
            return "Waiting for other checks"
        case DeployState.HELD:
            return f"Held: {deploy.environment} is locked"
        case DeployState.RUNNING:
            stage = current_stage(deploy)
            return f"{noun} running: {stage}" if stage else f"{noun} running"
        case DeployState.SUCCEEDED:
            return "Image built" if deploy.kind == "build" else f"{noun} to {deploy.environment} succeeded"
        case DeployState.FAILED:
            if is_internal_error(deploy):
                return f"Internal error ({deploy.id})"
            stage = failure_of(deploy).get("stage") or current_stage(deploy)
            return f"{noun} failed at {stage}" if stage else f"{noun} failed"
        case DeployState.CANCELLED:
            return f"{noun} cancelled" + (f": superseded by {short_sha(newer_sha)}" if deploy.superseded_by and newer_sha else "")
    return noun  # pragma: no cover - every state is matched above


def headline(deploy: Deploy, app_url: str | None, newer_sha: str | None = None) -> str:
    """The first sentence of the summary: where the deploy stands."""
    result, sha = deploy.result or {}, short_sha(deploy.sha)
    what = {"build": f"the image of {sha} (no deploy)", "rollback": f"the rollback of {deploy.environment} to {sha}"}.get(
        deploy.kind, f"{sha} to {deploy.environment}")
    match deploy.state:
        case DeployState.QUEUED:
            return f"Easy Deploy will build {what} next." if deploy.kind == "build" else f"Easy Deploy has queued {what}."
        case DeployState.WAITING:
            names = ", ".join(result.get("waiting_for") or []) or "the other checks on this commit"
            return f"Waiting for {names} to pass before deploying {sha}."
        case DeployState.HELD:
            reason = result.get("held_reason") or f"{deploy.environment} is locked"
            return f"Held: {reason.rstrip('.')}. It deploys when the environment is unlocked."
        case DeployState.RUNNING:
            return f"Easy Deploy is running {what}."
        case DeployState.SUCCEEDED:
            if deploy.kind == "build":
                image = result.get("image_uri")
                return f"The image of {sha} built" + (f": `{image}`." if image else ".")
            return f"{sha} is live on {deploy.environment}" + (f" at {app_url}." if app_url else ".")
        case DeployState.FAILED:
            if is_internal_error(deploy):
                return (f"Easy Deploy failed inside the service itself (internal error, deploy {deploy.id}); "
                        "this is our bug, not your code.")
            summary = failure_of(deploy).get("summary") or f"The {deploy.kind} failed."
            return summary.strip()
        case DeployState.CANCELLED:
            return cancel_reason(deploy, newer_sha)
    return ""  # pragma: no cover


def what_to_do(deploy: Deploy) -> str | None:
    """One sentence telling people what to do about a failure."""
    if deploy.state is not DeployState.FAILED:
        return None
    if is_internal_error(deploy):
        return f"Click Re-run to try again; if it fails again, tell the Easy Deploy team the deploy id {deploy.id}."
    advice = failure_of(deploy).get("what_to_do")
    return advice.strip() if advice else "Read the log lines below, fix the cause and push again."


def log_tail(deploy: Deploy, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last log lines of a failure."""
    return [str(line) for line in (failure_of(deploy).get("log_lines") or [])][-lines:]


def check_summary(deploy: Deploy, app_url: str | None, newer_sha: str | None = None) -> str:
    """The Markdown summary: the headline, what to do, the app's URL, the stage table."""
    parts = [headline(deploy, app_url, newer_sha)]
    if advice := what_to_do(deploy):
        parts.append(f"**What to do:** {advice}")
    if app_url and deploy.kind != "build":
        parts.append(f"**App:** {app_url}")
    parts.append(stage_table(deploy))
    parts.append(f"Deploy id: `{deploy.id}`")
    return "\n\n".join(parts)


def check_text(deploy: Deploy) -> str | None:
    """The `text` field: the failure's last log lines in a code block, or None."""
    tail = log_tail(deploy)
    if not tail:
        return None
    head = f"Last {len(tail)} log lines:\n\n```\n"
    body = "\n".join(tail).replace("```", "`\u200b``")  # a log line must not close the code block
    room = MAX_FIELD - len(head) - len("\n```")
    return head + cut(body, room, keep="tail") + "\n```"


def check_output(deploy: Deploy, app_url: str | None, newer_sha: str | None = None) -> dict[str, str]:
    """The check run `output` object, each field cut to GitHub's 65,535 characters."""
    output = {"title": cut(check_title(deploy, newer_sha)), "summary": cut(check_summary(deploy, app_url, newer_sha))}
    if (text := check_text(deploy)) is not None:
        output["text"] = cut(text)
    return output


def check_run_update(
    deploy: Deploy, app_url: str | None, details_url: str | None, *, newer_sha: str | None = None
) -> dict[str, Any]:
    """The PATCH body that brings a check run up to date with the deploy record."""
    body: dict[str, Any] = {"status": check_status(deploy.state), "output": check_output(deploy, app_url, newer_sha)}
    if details_url:
        body["details_url"] = details_url
    if deploy.state.finished:
        body["conclusion"] = _CONCLUSIONS[deploy.state]
        if completed := iso(deploy.finished_at or deploy.updated_at or None):
            body["completed_at"] = completed
        if deploy.kind != "build":
            body["actions"] = [dict(a) for a in ACTIONS]
    return body


def check_run_create(
    deploy: Deploy, app_url: str | None = None, details_url: str | None = None, *, newer_sha: str | None = None
) -> dict[str, Any]:
    """The POST body that creates the deploy's check run, already showing its current state (queued for a new deploy)."""
    return {"name": check_name(deploy), "head_sha": deploy.sha, "external_id": deploy.id,
            **check_run_update(deploy, app_url, details_url, newer_sha=newer_sha)}


def note_check_run(sha: str, external_id: str, title: str, summary: str) -> dict[str, Any]:
    """A completed neutral check run that explains why a button did nothing."""
    return {"name": CHECK_NAME_ROLLBACK_NOTE, "head_sha": sha, "external_id": external_id, "status": "completed",
            "conclusion": "neutral", "output": {"title": cut(title), "summary": cut(summary)}}


# -- deployments -----------------------------------------------------------------


def deployment_create(deploy: Deploy) -> dict[str, Any]:
    """The POST body of the GitHub deployment for a deploy (never for a pull request build)."""
    what = "Roll back" if deploy.kind == "rollback" else "Deploy"
    return {
        "ref": deploy.sha,
        "task": "deploy",
        "environment": deploy.environment,
        "auto_merge": False,  # deploy exactly this commit, never a merge of the default branch into it
        "required_contexts": [],  # Easy Deploy does its own gating (wait_for_checks)
        "payload": {"deploy_id": deploy.id},
        "description": cut(f"{what} {short_sha(deploy.sha)} to {deploy.environment} (Easy Deploy {deploy.id})",
                           MAX_STATUS_DESCRIPTION),
        "transient_environment": False,
        "production_environment": deploy.environment == "production",
    }


def deployment_state(deploy: Deploy) -> str:
    """The deployment status state of a deploy state."""
    match deploy.state:
        case DeployState.RUNNING:
            return "in_progress"
        case DeployState.SUCCEEDED:
            return "success"
        case DeployState.FAILED:
            return "error" if is_internal_error(deploy) else "failure"
        case DeployState.CANCELLED:
            return "inactive"
    return "queued"


def deployment_status(
    deploy: Deploy, app_url: str | None, log_url: str | None, *, newer_sha: str | None = None
) -> dict[str, Any]:
    """The POST body of the deployment status that matches the deploy record."""
    state = deployment_state(deploy)
    description = headline(deploy, app_url, newer_sha)
    body: dict[str, Any] = {"state": state, "description": cut(" ".join(description.split()), MAX_STATUS_DESCRIPTION),
                            "auto_inactive": False}  # the reporter marks the previous deployment inactive itself
    if log_url:
        body["log_url"] = log_url
    if state == "success" and app_url:
        body["environment_url"] = app_url
    return body


def deployment_inactive(newer: Deploy) -> dict[str, Any]:
    """The status that retires an earlier deployment once `newer` succeeded in its environment."""
    return {"state": "inactive", "auto_inactive": False,
            "description": cut(f"Replaced by {short_sha(newer.sha)} (deploy {newer.id}).", MAX_STATUS_DESCRIPTION)}
