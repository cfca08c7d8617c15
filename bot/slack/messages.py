"""Slack messages as Block Kit, built by pure functions from deploy records and locks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bot.deploys import Deploy, DeployState
from bot.locks import Lock

ROLLBACK_ACTION = "easydeploy_rollback"
REDEPLOY_ACTION = "easydeploy_redeploy"
DEPLOY_ACTIONS_BLOCK = "easydeploy_deploy_actions"
STAGES = ("identity", "source", "build", "release")
MAX_SECTION = 2900  # Slack refuses section text over 3000 characters

STATE_HEADLINE = {
    DeployState.QUEUED: (":hourglass_flowing_sand:", "Queued"),
    DeployState.WAITING: (":hourglass_flowing_sand:", "Waiting for other checks"),
    DeployState.HELD: (":lock:", "Held: the environment is locked"),
    DeployState.RUNNING: (":arrows_counterclockwise:", "Deploying"),
    DeployState.SUCCEEDED: (":white_check_mark:", "Deployed"),
    DeployState.FAILED: (":x:", "Deploy failed"),
    DeployState.CANCELLED: (":no_entry_sign:", "Cancelled"),
}
STAGE_ICON = {
    "pending": ":white_circle:",
    "running": ":arrows_counterclockwise:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "skipped": ":heavy_minus_sign:",
    "cancelled": ":no_entry_sign:",
}
TRIGGER_TEXT = {
    "push": "a push",
    "pull_request": "a pull request",
    "slack": "/deploy",
    "button": "a button",
    "rerun": "a re-run",
}


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control (so `<!channel>` stays text)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_date(ts: float | None, fmt: str = "{date_short_pretty} {time}") -> str:
    """A timestamp each reader sees in their own time zone, with a UTC fallback."""
    if not ts:
        return "—"
    fallback = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(ts)}^{fmt}|{fallback}>"


def commit_link(web_url: str, owner: str, repo: str, sha: str) -> str:
    """The short SHA, linked to the commit on GitHub."""
    return f"<{web_url.rstrip('/')}/{owner}/{repo}/commit/{sha}|`{sha[:7]}`>"


def repo_link(web_url: str, owner: str, repo: str) -> str:
    """`owner/repo`, linked to the repository on GitHub."""
    return f"<{web_url.rstrip('/')}/{owner}/{repo}|{owner}/{repo}>"


def ref_name(ref: str) -> str:
    """`refs/heads/main` → `main`; a SHA stays as it is."""
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def who(deploy: Deploy) -> str:
    """Who or what asked for the deploy, for people."""
    how = TRIGGER_TEXT.get(deploy.trigger, deploy.trigger)
    if deploy.actor:
        return f"{escape(deploy.actor)} via {how}"
    return how


def duration(deploy: Deploy) -> str | None:
    """How long the deploy took (or has taken), as `1m 05s`."""
    if not deploy.created_at:
        return None
    end = deploy.finished_at or (None if not deploy.state.finished else deploy.updated_at)
    if end is None:
        return None
    secs = max(int(end - deploy.created_at), 0)
    return f"{secs // 60}m {secs % 60:02d}s" if secs >= 60 else f"{secs}s"


def stage_line(name: str, record: dict[str, Any] | None) -> str:
    """One stage: icon, name and its latest message."""
    record = record or {}
    state = str(record.get("state") or "pending")
    line = f"{STAGE_ICON.get(state, ':white_circle:')} *{name}*"
    if record.get("message"):
        line += f" — {escape(str(record['message']))[:300]}"
    return line


def headline(deploy: Deploy) -> str:
    """The first words: an icon and the state, said of a rollback when it is one."""
    icon, text = STATE_HEADLINE.get(deploy.state, (":grey_question:", deploy.state.value))
    if deploy.kind == "rollback":
        text = {"Deploying": "Rolling back", "Deployed": "Rolled back", "Deploy failed": "Rollback failed"}.get(text, text)
    return f"{icon} {text}"


def deploy_message(deploy: Deploy, web_url: str) -> dict[str, Any]:
    """The live message of one deploy: `text` (notifications, fallback) and `blocks`."""
    repo = repo_link(web_url, deploy.owner, deploy.repo)
    sha = commit_link(web_url, deploy.owner, deploy.repo, deploy.sha)
    title = f"{headline(deploy)} {repo} to *{escape(deploy.environment)}*"
    fields = [
        f"*Commit*\n{sha} on `{escape(ref_name(deploy.ref))}`",
        f"*Triggered by*\n{who(deploy)}",
    ]
    took = duration(deploy)
    fields.append(f"*Started*\n{slack_date(deploy.created_at)}" + (f" ({took})" if took else ""))
    fields.append(f"*Deploy*\n`{deploy.id}`")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": title}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    stage_names = [s for s in STAGES if s in deploy.stages] + [s for s in deploy.stages if s not in STAGES]
    if stage_names:
        lines = "\n".join(stage_line(name, deploy.stages.get(name)) for name in stage_names)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": lines[:MAX_SECTION]}})
    outcome = outcome_text(deploy)
    if outcome:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": outcome[:MAX_SECTION]}})
    blocks.append(deploy_buttons(deploy))
    plain = f"{headline(deploy)} {deploy.full_name}@{deploy.sha[:7]} to {deploy.environment}"
    return {"text": plain, "blocks": blocks}


def outcome_text(deploy: Deploy) -> str | None:
    """The URL on success, the reason on failure, what superseded a cancelled deploy."""
    result = deploy.result or {}
    if deploy.state is DeployState.SUCCEEDED and result.get("app_url"):
        return f":globe_with_meridians: {result['app_url']}"
    if deploy.state is DeployState.FAILED:
        failure = result.get("failure") or {}
        summary = failure.get("summary") or result.get("error") or "no reason was recorded"
        text = f"*Why:* {escape(str(summary))}"
        if failure.get("what_to_do"):
            text += f"\n*What to do:* {escape(str(failure['what_to_do']))}"
        return text
    if deploy.state is DeployState.CANCELLED and deploy.superseded_by:
        return f"Superseded by the newer deploy `{deploy.superseded_by}`."
    if deploy.state is DeployState.HELD and result.get("held_reason"):
        return f"*Held:* {escape(str(result['held_reason']))}"
    return None


def deploy_buttons(deploy: Deploy) -> dict[str, Any]:
    """The "Roll back" and "Redeploy" buttons; their value is the deploy id."""
    return {
        "type": "actions",
        "block_id": DEPLOY_ACTIONS_BLOCK,
        "elements": [
            {
                "type": "button", "action_id": ROLLBACK_ACTION, "value": deploy.id, "style": "danger",
                "text": {"type": "plain_text", "text": "Roll back"},
                "confirm": {
                    "title": {"type": "plain_text", "text": "Roll back?"},
                    "text": {"type": "mrkdwn", "text": f"Return *{escape(deploy.full_name)}* in *{escape(deploy.environment)}*"
                             " to the previous successful deploy."},
                    "confirm": {"type": "plain_text", "text": "Roll back"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                },
            },
            {
                "type": "button", "action_id": REDEPLOY_ACTION, "value": deploy.id,
                "text": {"type": "plain_text", "text": "Redeploy"},
            },
        ],
    }


def result_word(deploy: Deploy) -> str:
    """One word for a deploy's state, with its icon."""
    icon, _ = STATE_HEADLINE.get(deploy.state, (":grey_question:", ""))
    return f"{icon} {deploy.state.value}"


def history_message(full_name: str, deploys: list[Deploy], web_url: str) -> dict[str, Any]:
    """The last deploys of a repository: SHA, who, when, result, URL."""
    if not deploys:
        return {"text": f"{full_name} has not been deployed yet."}
    lines = [f"*Last {len(deploys)} deploys of {escape(full_name)}*"]
    for d in deploys:
        line = (f"{result_word(d)} {commit_link(web_url, d.owner, d.repo, d.sha)} to *{escape(d.environment)}*"
                f" — {who(d)}, {slack_date(d.created_at)}")
        if d.state is DeployState.SUCCEEDED and d.result.get("app_url"):
            line += f" — {d.result['app_url']}"
        elif d.state is DeployState.FAILED and (d.result.get("failure") or {}).get("summary"):
            line += f" — {escape(str(d.result['failure']['summary']))[:200]}"
        lines.append(line)
    text = "\n".join(lines)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_SECTION]}}]}


def lock_text(lock: Lock) -> str:
    """`locked by alice (<@U1>) since …: reason`."""
    by = escape(lock.holder) + (f" (<@{lock.holder_slack_user}>)" if lock.holder_slack_user else "")
    text = f":lock: *{escape(lock.environment)}* is locked by {by} since {slack_date(lock.locked_at)}"
    return text + (f": {escape(lock.reason)}" if lock.reason else " (no reason given)")


def status_message(full_name: str, deploys: Iterable[Deploy], locks: list[Lock], web_url: str) -> dict[str, Any]:
    """Per environment: the newest deploy and what runs there now; then the locks."""
    by_env: dict[str, list[Deploy]] = {}
    for d in deploys:
        by_env.setdefault(d.environment, []).append(d)
    lines = [f"*Status of {escape(full_name)}*"]
    if not by_env:
        lines.append("Not deployed yet.")
    for env, items in sorted(by_env.items()):
        latest = items[0]
        live = next((d for d in items if d.state is DeployState.SUCCEEDED), None)
        line = f"*{escape(env)}*: "
        if live is not None:
            line += f"running {commit_link(web_url, live.owner, live.repo, live.sha)} since {slack_date(live.finished_at or live.updated_at)}"
            if live.result.get("app_url"):
                line += f" — {live.result['app_url']}"
        else:
            line += "nothing live yet"
        if latest is not live:
            line += f"\n    latest: {result_word(latest)} {commit_link(web_url, latest.owner, latest.repo, latest.sha)} ({who(latest)})"
        lines.append(line)
    lines.extend(lock_text(lock) for lock in locks)
    text = "\n".join(lines)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_SECTION]}}]}

