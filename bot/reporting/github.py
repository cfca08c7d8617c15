"""The GitHub reporter: keeps each deploy's check run and deployment in step with its record.

The deploy record is the truth. On every change the reporter re-reads it, builds
the bodies GitHub should show (bot.reporting.checks) and sends only what differs
from what it sent last; what it created and sent is remembered in the record's
`reporting` column under "github", so a restarted process neither sends twice nor
creates a second check run. When GitHub is down or rate limits us beyond the
client's own retries, a durable `github_report` job tries again later, so the
final state always reaches GitHub.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from typing import Any

import orjson

from bot.deploys import Deploy, DeployState, DeployStore
from bot.github import GitHubApp, GitHubBroken, GitHubError, RateLimitExceeded, rate_limit_wait
from bot.queue import Job, JobQueue, RetryLater, enqueue_in
from bot.reporting.checks import (
    check_name,
    check_run_create,
    check_run_update,
    deployment_create,
    deployment_inactive,
    deployment_status,
)
from bot.store import now

log = logging.getLogger(__name__)

REPORT_JOB = "github_report"
RETRYABLE = (GitHubBroken, RateLimitExceeded)
RECONCILE_WINDOW = 7 * 24 * 3600.0  # finished deploys older than this are not chased after a restart


def digest(body: dict[str, Any]) -> str:
    """A short fingerprint of a request body: equal bodies, equal digests."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _http_url(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("https://", "http://")) else None


def app_url_of(deploy: Deploy) -> str | None:
    """The app's URL once the deploy knows it."""
    release = (deploy.stages.get("release") or {}).get("outputs") or {}
    return _http_url((deploy.result or {}).get("app_url")) or _http_url(release.get("app_url"))


def logs_url_of(deploy: Deploy) -> str | None:
    """Where the build's logs are: the result, else the build stage's outputs."""
    build = (deploy.stages.get("build") or {}).get("outputs") or {}
    return (_http_url((deploy.result or {}).get("build_logs_url")) or _http_url(build.get("build_logs_url"))
            or _http_url(build.get("logs_url")))


def retry_delay(exc: GitHubError, attempt: int, base: float, cap: float) -> float:
    """How long to wait before reporting again: GitHub's rate-limit reset, else exponential backoff."""
    wait = rate_limit_wait(exc.status, exc.headers, time.time()) if isinstance(exc, RateLimitExceeded) else None
    backoff = base * 2 ** max(attempt - 1, 0)
    return min(max(wait or 0.0, backoff), cap)


def save_reporting_in(conn: sqlite3.Connection, deploy_id: str, fields: dict[str, Any]) -> None:
    """Set keys under reporting.github in one atomic UPDATE (other reporters share the column)."""
    if not fields:
        return
    args = ", ".join("?, json(?)" for _ in fields)
    params: list[Any] = []
    for name, value in fields.items():
        params += [f"$.github.{name}", orjson.dumps(value).decode()]
    conn.execute(f"UPDATE deploys SET reporting = json_set(reporting, {args}) WHERE id = ?", (*params, deploy_id))


def schedule_report_in(conn: sqlite3.Connection, deploy_id: str, delay: float) -> bool:
    """Queue a `github_report` job for the deploy unless one is already waiting; True if queued."""
    group = f"{REPORT_JOB}:{deploy_id}"
    if conn.execute("SELECT 1 FROM jobs WHERE group_key = ? AND state = 'queued'", (group,)).fetchone():
        return False
    enqueue_in(conn, REPORT_JOB, {"deploy_id": deploy_id}, group_key=group, not_before=now() + delay)
    return True


def retired_in(conn: sqlite3.Connection, deploy: Deploy) -> list[Deploy]:
    """Earlier deploys of the same app and environment whose GitHub deployment still shows success."""
    rows = conn.execute(
        "SELECT * FROM deploys WHERE owner = ? AND repo = ? AND environment = ? AND kind != 'build' AND id != ?"
        " AND json_extract(reporting, '$.github.deployment_state') = 'success'",
        (deploy.owner, deploy.repo, deploy.environment, deploy.id),
    ).fetchall()
    return [Deploy.from_row(r) for r in rows]


def out_of_step_in(conn: sqlite3.Connection, since: float) -> list[str]:
    """Deploys GitHub may not show correctly: every unfinished one, and recent ones last reported in another state."""
    rows = conn.execute(
        "SELECT id FROM deploys WHERE state NOT IN ('succeeded', 'failed', 'cancelled')"
        " OR (updated_at >= ? AND coalesce(json_extract(reporting, '$.github.state'), '') != state)"
        " ORDER BY created_at",
        (since,),
    ).fetchall()
    return [r["id"] for r in rows]


class GitHubReporter:
    """Reports deploys as check runs, deployments and deployment statuses (a `Reporter`)."""

    def __init__(
        self, github: GitHubApp, deploys: DeployStore, queue: JobQueue, *,
        retry_base: float = 5.0, retry_cap: float = 600.0,
    ) -> None:
        self.github = github
        self.deploys = deploys
        self.queue = queue
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self._locks: dict[str, asyncio.Lock] = {}

    async def deploy_changed(self, deploy: Deploy) -> None:
        """Bring GitHub up to date with the deploy; if GitHub is unavailable, try again later."""
        try:
            await self.sync(deploy.id)
        except RETRYABLE as exc:
            delay = retry_delay(exc, 1, self.retry_base, self.retry_cap)
            log.warning("deploy %s: GitHub unavailable (%s); reporting again in %.1fs", deploy.id, exc, delay)
            await self.schedule(deploy.id, delay)

    async def schedule(self, deploy_id: str, delay: float = 0.0) -> None:
        """Queue a durable report of this deploy (one waiting job per deploy at most)."""
        if await self.deploys.store.run(schedule_report_in, deploy_id, delay):
            self.queue.notify()

    async def run_job(self, job: Job) -> None:
        """The `github_report` job: report the deploy, backing off while GitHub is unavailable."""
        deploy_id = job.payload["deploy_id"]
        try:
            await self.sync(deploy_id)
        except RETRYABLE as exc:
            delay = retry_delay(exc, job.attempts, self.retry_base, self.retry_cap)
            log.warning("deploy %s: GitHub still unavailable (%s, attempt %d); again in %.1fs", deploy_id, exc, job.attempts, delay)
            raise RetryLater(str(exc), delay) from exc
        except GitHubError as exc:
            # A 4xx that retrying will not fix (the repository is gone, the App lost access).
            log.error("deploy %s: GitHub refused the report: %s", deploy_id, exc)

    async def reconcile(self) -> int:
        """After a restart: queue a report of every deploy GitHub may show wrongly; return how many."""
        ids = await self.deploys.store.run(out_of_step_in, now() - RECONCILE_WINDOW)
        for deploy_id in ids:
            await self.schedule(deploy_id)
        if ids:
            log.info("reconciling GitHub reports of %d deploy(s)", len(ids))
        return len(ids)

    async def sync(self, deploy_id: str) -> None:
        """Send GitHub what the record says and it does not show yet (one deploy at a time)."""
        lock = self._locks.setdefault(deploy_id, asyncio.Lock())
        async with lock:
            finished = await self._sync(deploy_id)
        if finished and not lock.locked():
            self._locks.pop(deploy_id, None)

    # -- internals -------------------------------------------------------------

    async def _sync(self, deploy_id: str) -> bool:
        deploy = await self.deploys.get(deploy_id)
        if deploy is None:
            return True
        gh: dict[str, Any] = dict((deploy.reporting or {}).get("github") or {})
        newer_sha = await self._newer_sha(deploy)
        app_url, logs_url = app_url_of(deploy), logs_url_of(deploy)
        await self._sync_check_run(deploy, gh, app_url, logs_url, newer_sha)
        if deploy.kind != "build":
            await self._sync_deployment(deploy, gh, app_url, logs_url or gh.get("check_run_url"), newer_sha)
        if gh.get("state") != deploy.state.value:
            await self._save(deploy.id, gh, state=deploy.state.value)
        return deploy.state.finished

    async def _sync_check_run(self, deploy: Deploy, gh: dict[str, Any], app_url: str | None,
                              logs_url: str | None, newer_sha: str | None) -> None:
        update = check_run_update(deploy, app_url, logs_url, newer_sha=newer_sha)
        wanted = digest(update)
        if gh.get("check_run_id") is None and gh.get("check_run_creating"):
            # A previous process may have created it and died before remembering the id.
            found = await self._find_check_run(deploy)
            if found is not None:
                await self._save(deploy.id, gh, check_run_id=found["id"], check_run_url=found.get("html_url"))
        if gh.get("check_run_id") is None:
            await self._save(deploy.id, gh, check_run_creating=True)
            created = await self._repo(deploy, "POST", "/check-runs",
                                       check_run_create(deploy, app_url, logs_url, newer_sha=newer_sha))
            await self._save(deploy.id, gh, check_run_id=created["id"], check_run_url=created.get("html_url"),
                             check_run_digest=wanted, check_run_status=update["status"])
            return
        if gh.get("check_run_digest") == wanted:
            return
        await self._repo(deploy, "PATCH", f"/check-runs/{gh['check_run_id']}", update)
        await self._save(deploy.id, gh, check_run_digest=wanted, check_run_status=update["status"])

    async def _sync_deployment(self, deploy: Deploy, gh: dict[str, Any], app_url: str | None,
                               log_url: str | None, newer_sha: str | None) -> None:
        if gh.get("deployment_error") or gh.get("retired_by"):
            return  # GitHub refused the deployment, or a newer success already retired it
        status = deployment_status(deploy, app_url, log_url, newer_sha=newer_sha)
        wanted = digest(status)
        if gh.get("deployment_id") is None and gh.get("deployment_creating"):
            found = await self._find_deployment(deploy)
            if found is not None:
                await self._save(deploy.id, gh, deployment_id=found)
        if gh.get("deployment_id") is None:
            await self._save(deploy.id, gh, deployment_creating=True)
            try:
                created = await self._repo(deploy, "POST", "/deployments", deployment_create(deploy))
            except GitHubError as exc:
                if isinstance(exc, RETRYABLE) or exc.status == 401:
                    raise
                # 409/422: GitHub will not make this deployment (e.g. branch protection); the check run still reports.
                log.error("deploy %s: GitHub refused the deployment: %s", deploy.id, exc)
                await self._save(deploy.id, gh, deployment_error=str(exc)[:300])
                return
            if not isinstance(created, dict) or "id" not in created:  # 202 "Auto-merged …" answers carry no id
                await self._save(deploy.id, gh, deployment_error=str(created)[:300])
                return
            await self._save(deploy.id, gh, deployment_id=created["id"])
        if gh.get("deployment_digest") == wanted:
            return
        await self._repo(deploy, "POST", f"/deployments/{gh['deployment_id']}/statuses", status)
        await self._save(deploy.id, gh, deployment_digest=wanted, deployment_state=status["state"])
        if status["state"] == "success":
            await self._retire_previous(deploy)

    async def _retire_previous(self, deploy: Deploy) -> None:
        """Mark the earlier successful deployment(s) of this environment inactive."""
        for old in await self.deploys.store.run(retired_in, deploy):
            old_gh = dict(old.reporting.get("github") or {})
            await self._repo(old, "POST", f"/deployments/{old_gh['deployment_id']}/statuses", deployment_inactive(deploy))
            await self._save(old.id, old_gh, deployment_state="inactive", retired_by=deploy.id)

    async def _find_check_run(self, deploy: Deploy) -> dict[str, Any] | None:
        data = await self._repo(deploy, "GET", f"/commits/{deploy.sha}/check-runs", None,
                                params={"check_name": check_name(deploy), "filter": "all", "per_page": "100"})
        for run in (data or {}).get("check_runs", []):
            if run.get("external_id") == deploy.id and (run.get("app") or {}).get("id") == self.github.app_id:
                return run
        return None

    async def _find_deployment(self, deploy: Deploy) -> int | None:
        data = await self._repo(deploy, "GET", "/deployments", None,
                                params={"sha": deploy.sha, "environment": deploy.environment, "per_page": "100"})
        for dep in data or []:
            if isinstance(dep.get("payload"), dict) and dep["payload"].get("deploy_id") == deploy.id:
                return dep["id"]
        return None

    async def _newer_sha(self, deploy: Deploy) -> str | None:
        if deploy.state is not DeployState.CANCELLED or not deploy.superseded_by:
            return None
        newer = await self.deploys.get(deploy.superseded_by)
        return newer.sha if newer else None

    async def _repo(self, deploy: Deploy, method: str, suffix: str, body: Any, *, params: dict | None = None) -> Any:
        return await self.github.request(deploy.installation_id, method, f"/repos/{deploy.owner}/{deploy.repo}{suffix}",
                                         json=body, params=params)

    async def _save(self, deploy_id: str, gh: dict[str, Any], **fields: Any) -> None:
        await self.deploys.store.run(save_reporting_in, deploy_id, fields)
        gh.update(fields)
