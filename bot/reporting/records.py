"""Reading deploy records for the check-run handlers: by commit, and as intents to run again."""

from __future__ import annotations

import sqlite3

from bot.deploys import Deploy, DeployIntent, Trigger


def latest_of_commit_in(conn: sqlite3.Connection, owner: str, repo: str, sha: str) -> list[Deploy]:
    """The newest deploy of a commit for each target (kind, environment, pull request), oldest target first."""
    rows = conn.execute(
        "SELECT * FROM deploys WHERE owner = ? COLLATE NOCASE AND repo = ? COLLATE NOCASE AND sha = ?"
        " ORDER BY created_at DESC",
        (owner, repo, sha),
    ).fetchall()
    newest: dict[tuple, Deploy] = {}
    for row in rows:
        deploy = Deploy.from_row(row)
        newest.setdefault((deploy.kind, deploy.environment, deploy.pr_number), deploy)
    return sorted(newest.values(), key=lambda d: d.created_at)


def again_intent(deploy: Deploy, *, trigger: Trigger, actor: str | None, kind: str | None = None) -> DeployIntent:
    """The intent that runs a recorded deploy again (as `kind`, by default the same kind)."""
    kind = kind or deploy.kind
    return deploy.intent(kind=kind, trigger=trigger, actor=actor,
                         rollback_task_definition=deploy.rollback_task_definition if kind == "rollback" else None)


def same_repository(deploy: Deploy, installation_id: int | None, full_name: str) -> bool:
    """True when an event about a check run really is about this deploy's repository."""
    return deploy.installation_id == installation_id and deploy.full_name.lower() == full_name.lower()
