"""Deploy records: the one place a deploy is asked for, whatever triggered it.

A push, a Slack command and a button all call `request_deploy`; the record is
keyed so a redelivered webhook, a double click or a restarted worker lands on
the same deploy. A newer request for the same app and environment supersedes an
older one that has not started yet.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from bot.queue import enqueue_in
from bot.store import Store, now

DEPLOYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS deploys (
    id TEXT PRIMARY KEY,
    key TEXT UNIQUE NOT NULL,
    installation_id INTEGER NOT NULL,
    owner TEXT NOT NULL,
    repo TEXT NOT NULL,
    sha TEXT NOT NULL,
    ref TEXT NOT NULL,
    default_branch TEXT NOT NULL,
    clone_url TEXT NOT NULL,
    environment TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    trigger TEXT NOT NULL,
    actor TEXT,
    untrusted INTEGER NOT NULL DEFAULT 0,
    pr_number INTEGER,
    rollback_task_definition TEXT,
    superseded_by TEXT,
    stages TEXT NOT NULL DEFAULT '{}',
    result TEXT NOT NULL DEFAULT '{}',
    reporting TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS deploys_app ON deploys (owner, repo, environment, state);
"""


class DeployState(StrEnum):
    """A deploy's life: queued, maybe waiting or held, running, then one end state."""

    QUEUED = "queued"
    WAITING = "waiting"  # for other check suites (wait_for_checks)
    HELD = "held"  # the environment is locked
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for the end states."""
        return self in (DeployState.SUCCEEDED, DeployState.FAILED, DeployState.CANCELLED)


PENDING_STATES = (DeployState.QUEUED, DeployState.WAITING, DeployState.HELD)


class Trigger(StrEnum):
    """What asked for the deploy."""

    PUSH = "push"
    PULL_REQUEST = "pull_request"
    SLACK = "slack"
    BUTTON = "button"
    RERUN = "rerun"


@dataclass(frozen=True)
class DeployIntent:
    """Everything needed to ask for a deploy."""

    installation_id: int
    owner: str
    repo: str
    sha: str
    ref: str
    default_branch: str
    clone_url: str
    environment: str = "production"
    kind: str = "deploy"  # deploy | build | rollback
    trigger: Trigger = Trigger.PUSH
    actor: str | None = None
    untrusted: bool = False
    pr_number: int | None = None
    rollback_task_definition: str | None = None

    @property
    def group_key(self) -> str:
        """Deploys sharing this key run one at a time, in order."""
        if self.kind == "build":
            return f"build:{self.owner}/{self.repo}#{self.pr_number}".lower()
        return f"app:{self.owner}/{self.repo}:{self.environment}".lower()


@dataclass
class Deploy:
    """A deploy record as stored."""

    id: str
    key: str
    installation_id: int
    owner: str
    repo: str
    sha: str
    ref: str
    default_branch: str
    clone_url: str
    environment: str
    kind: str
    state: DeployState
    trigger: str
    actor: str | None
    untrusted: bool
    pr_number: int | None
    rollback_task_definition: str | None
    superseded_by: str | None
    stages: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    reporting: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    @property
    def group_key(self) -> str:
        return self.intent().group_key

    def intent(self, **changes: Any) -> DeployIntent:
        """The intent this deploy was asked for with, `changes` applied (to ask for it again, or differently)."""
        values: dict[str, Any] = dict(
            installation_id=self.installation_id, owner=self.owner, repo=self.repo, sha=self.sha, ref=self.ref,
            default_branch=self.default_branch, clone_url=self.clone_url, environment=self.environment, kind=self.kind,
            trigger=Trigger(self.trigger), actor=self.actor, untrusted=self.untrusted, pr_number=self.pr_number,
            rollback_task_definition=self.rollback_task_definition,
        )
        values.update(changes)
        return DeployIntent(**values)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Deploy":
        data = dict(row)
        data["state"] = DeployState(data["state"])
        data["untrusted"] = bool(data["untrusted"])
        for name in ("stages", "result", "reporting"):
            data[name] = orjson.loads(data[name])
        return cls(**data)


@dataclass(frozen=True)
class DeployRequested:
    """What `request_deploy` did: the deploy, whether it is new, and what it superseded."""

    deploy: Deploy
    created: bool
    superseded: list[Deploy]


def new_deploy_id() -> str:
    """A short, unguessable, URL-safe id."""
    return "d-" + secrets.token_hex(6)


def get_deploy_in(conn: sqlite3.Connection, deploy_id: str) -> Deploy | None:
    """Read one deploy inside a transaction."""
    row = conn.execute("SELECT * FROM deploys WHERE id = ?", (deploy_id,)).fetchone()
    return Deploy.from_row(row) if row else None


def _job_key(deploy_id: str) -> str:
    return "deploy:" + deploy_id


def queue_in(conn: sqlite3.Connection, deploy: Deploy) -> None:
    """Set a deploy queued and give it a fresh job (replacing any job of it that is not running)."""
    conn.execute("UPDATE deploys SET state = 'queued', updated_at = ? WHERE id = ?", (now(), deploy.id))
    conn.execute("DELETE FROM jobs WHERE key = ? AND state != 'running'", (_job_key(deploy.id),))
    enqueue_in(conn, "deploy", {"deploy_id": deploy.id}, key=_job_key(deploy.id), group_key=deploy.group_key)
    deploy.state = DeployState.QUEUED


def cancel_in(conn: sqlite3.Connection, deploy: Deploy, *, superseded_by: str | None = None,
              reason: str | None = None) -> None:
    """End a deploy that has not started as cancelled (naming what superseded it or why) and drop its queued job."""
    if reason is not None:
        deploy.result = {**deploy.result, "cancel_reason": reason}
    deploy.state = DeployState.CANCELLED
    deploy.superseded_by = superseded_by or deploy.superseded_by
    conn.execute(
        "UPDATE deploys SET state = 'cancelled', superseded_by = ?, result = ?, updated_at = ?, finished_at = ?"
        " WHERE id = ?",
        (deploy.superseded_by, orjson.dumps(deploy.result).decode(), now(), now(), deploy.id),
    )
    conn.execute("UPDATE jobs SET state = 'cancelled', updated_at = ? WHERE key = ? AND state = 'queued'",
                 (now(), _job_key(deploy.id)))


def request_deploy_in(
    conn: sqlite3.Connection, intent: DeployIntent, key: str, *, state: DeployState = DeployState.QUEUED
) -> DeployRequested:
    """Record a deploy and queue its job in the caller's transaction (idempotent by `key`)."""
    row = conn.execute("SELECT * FROM deploys WHERE key = ?", (key,)).fetchone()
    if row is not None:
        return DeployRequested(Deploy.from_row(row), False, [])
    deploy_id = new_deploy_id()
    ts = now()
    values = asdict(intent)
    values["trigger"] = intent.trigger.value
    values["untrusted"] = int(intent.untrusted)
    conn.execute(
        "INSERT INTO deploys (id, key, installation_id, owner, repo, sha, ref, default_branch, clone_url,"
        " environment, kind, state, trigger, actor, untrusted, pr_number, rollback_task_definition,"
        " created_at, updated_at) VALUES (:id, :key, :installation_id, :owner, :repo, :sha, :ref,"
        " :default_branch, :clone_url, :environment, :kind, :state, :trigger, :actor, :untrusted,"
        " :pr_number, :rollback_task_definition, :ts, :ts)",
        {**values, "id": deploy_id, "key": key, "state": state.value, "ts": ts},
    )
    superseded = _supersede_pending(conn, intent, deploy_id)
    if state is DeployState.QUEUED:
        enqueue_in(conn, "deploy", {"deploy_id": deploy_id}, key=_job_key(deploy_id), group_key=intent.group_key)
    deploy = get_deploy_in(conn, deploy_id)
    assert deploy is not None
    return DeployRequested(deploy, True, superseded)


def _supersede_pending(conn: sqlite3.Connection, intent: DeployIntent, newer_id: str) -> list[Deploy]:
    """Cancel the not-yet-started deploys this one makes pointless."""
    if intent.kind == "build":
        where, params = "kind = 'build' AND pr_number IS ?", (intent.pr_number,)
    else:
        where, params = "kind != 'build' AND environment = ?", (intent.environment,)
    placeholders = ",".join("?" for _ in PENDING_STATES)
    rows = conn.execute(
        f"SELECT * FROM deploys WHERE owner = ? AND repo = ? AND {where} AND id != ?"
        f" AND state IN ({placeholders})",
        (intent.owner, intent.repo, *params, newer_id, *[s.value for s in PENDING_STATES]),
    ).fetchall()
    cancelled = [Deploy.from_row(row) for row in rows]
    for old in cancelled:
        cancel_in(conn, old, superseded_by=newer_id)
    return cancelled


class DeployStore:
    """Async access to deploy records."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def request(self, intent: DeployIntent, key: str, *, state: DeployState = DeployState.QUEUED) -> DeployRequested:
        """Record a deploy and queue it (idempotent by key)."""
        return await self.store.run(request_deploy_in, intent, key, state=state)

    async def get(self, deploy_id: str) -> Deploy | None:
        """One deploy, or None."""
        return await self.store.run(get_deploy_in, deploy_id)

    async def update(self, deploy_id: str, **fields: Any) -> None:
        """Set some fields of a deploy."""
        sets, params = [], []
        for name, value in fields.items():
            if name in ("stages", "result", "reporting"):
                value = orjson.dumps(value).decode()
            elif isinstance(value, StrEnum):
                value = value.value
            sets.append(f"{name} = ?")
            params.append(value)
        sets.append("updated_at = ?")
        params.append(now())
        await self.store.execute(f"UPDATE deploys SET {', '.join(sets)} WHERE id = ?", (*params, deploy_id))

    async def list_for_repo(self, owner: str, repo: str, *, environment: str | None = None, limit: int = 10) -> list[Deploy]:
        """The newest deploys of a repository."""
        sql = "SELECT * FROM deploys WHERE owner = ? COLLATE NOCASE AND repo = ? COLLATE NOCASE AND kind != 'build'"
        params: list[Any] = [owner, repo]
        if environment:
            sql += " AND environment = ?"
            params.append(environment)
        sql += " ORDER BY created_at DESC LIMIT ?"
        params.append(limit)
        return [Deploy.from_row(r) for r in await self.store.fetchall(sql, tuple(params))]

    async def unfinished(self) -> list[Deploy]:
        """Deploys not yet in an end state (for recovery after a restart)."""
        rows = await self.store.fetchall(
            "SELECT * FROM deploys WHERE state NOT IN ('succeeded', 'failed', 'cancelled') ORDER BY created_at"
        )
        return [Deploy.from_row(r) for r in rows]


def rollback_target_in(conn: sqlite3.Connection, owner: str, repo: str, environment: str, to_sha: str | None = None) -> Deploy | None:
    """The deploy a rollback returns to: the one before the newest success, or the newest success of `to_sha`."""
    rows = conn.execute(
        "SELECT * FROM deploys WHERE owner = ? COLLATE NOCASE AND repo = ? COLLATE NOCASE AND environment = ?"
        " AND state = 'succeeded' AND kind != 'build' ORDER BY finished_at DESC, created_at DESC LIMIT 50",
        (owner, repo, environment),
    ).fetchall()
    successes = [Deploy.from_row(r) for r in rows if orjson.loads(r["result"]).get("task_definition_arn")]
    if to_sha:
        return next((d for d in successes if d.sha.startswith(to_sha.lower())), None)
    current = successes[0].sha if successes else None
    return next((d for d in successes if d.sha != current), None)


def release_held_in(conn: sqlite3.Connection, owner: str, repo: str, environment: str) -> list[Deploy]:
    """After an unlock: queue the newest held deploy again, cancel the older held ones; return what changed."""
    rows = conn.execute(
        "SELECT * FROM deploys WHERE owner = ? COLLATE NOCASE AND repo = ? COLLATE NOCASE AND environment = ?"
        " AND state = 'held' ORDER BY created_at DESC",
        (owner, repo, environment),
    ).fetchall()
    changed = [Deploy.from_row(row) for row in rows]
    if changed:
        newest, *older = changed
        queue_in(conn, newest)
        for deploy in older:
            cancel_in(conn, deploy, superseded_by=newest.id)
    return changed
