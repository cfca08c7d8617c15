"""The deploy service: the single entry point for asking for a deploy, and the deploy job.

Reporters (GitHub check runs and deployments, Slack messages) are told about
every change; a reporter that fails never fails the deploy.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.deploys import (
    Deploy,
    DeployIntent,
    DeployRequested,
    DeployState,
    DeployStore,
    Trigger,
    cancel_in,
    get_deploy_in,
    queue_in,
    release_held_in,
    rollback_target_in,
)
from bot.queue import JobQueue

log = logging.getLogger(__name__)


class Reporter(Protocol):
    """Something that shows deploys to people."""

    async def deploy_changed(self, deploy: Deploy) -> None:
        """Called after the deploy was created, moved a stage, or ended (the record is the truth)."""


TenantProvisioner = Callable[[int, str], Awaitable[None]]


class DeployService:
    """Asks for deploys and tells the reporters."""

    def __init__(
        self,
        deploys: DeployStore,
        queue: JobQueue,
        reporters: list[Reporter] | None = None,
        provision: TenantProvisioner | None = None,
    ) -> None:
        self.deploys = deploys
        self.queue = queue
        self.reporters: list[Reporter] = list(reporters or ())
        self._provision = provision
        self.runner: Any = None  # the DeployRunner, when the pipeline is installed

    def set_provisioner(self, provision: TenantProvisioner) -> None:
        """Install the function that creates a tenant's AWS identity."""
        self._provision = provision

    async def request(self, intent: DeployIntent, key: str, *, state: DeployState = DeployState.QUEUED) -> DeployRequested:
        """Record a deploy (idempotent by key), queue it, and report it and what it superseded."""
        result = await self.deploys.request(intent, key, state=state)
        if result.created:
            self.queue.notify()
            for old in result.superseded:
                await self.report(old)
        await self.report(result.deploy)
        return result

    async def report(self, deploy: Deploy) -> None:
        """Tell every reporter; their failures are logged, never raised."""
        for reporter in self.reporters:
            try:
                await reporter.deploy_changed(deploy)
            except Exception:  # noqa: BLE001 - reporting never fails a deploy
                log.exception("reporter %s failed for deploy %s", type(reporter).__name__, deploy.id)

    async def release_held(self, owner: str, repo: str, environment: str) -> Deploy | None:
        """After an unlock: start the newest held deploy (older held ones are superseded); return it."""
        changed = await self.deploys.store.run(release_held_in, owner, repo, environment)
        if changed:
            self.queue.notify()
        for deploy in changed:
            await self.report(deploy)
        return changed[0] if changed else None

    async def rollback_intent(
        self, owner: str, repo: str, environment: str, *, to_sha: str | None = None,
        trigger: Trigger = Trigger.SLACK, actor: str | None = None,
    ) -> DeployIntent | None:
        """A rollback to the previous successful deploy (or the newest success of `to_sha`); None if there is none."""
        target = await self.deploys.store.run(rollback_target_in, owner, repo, environment, to_sha)
        if target is None:
            return None
        return target.intent(environment=environment, kind="rollback", trigger=trigger, actor=actor, untrusted=False,
                             pr_number=None, rollback_task_definition=target.result["task_definition_arn"])

    async def provision_tenant(self, installation_id: int, owner: str) -> None:
        """Create the tenant's AWS identity (when a pipeline is configured)."""
        if self._provision is None:
            return
        try:
            await self._provision(installation_id, owner)
        except Exception:  # noqa: BLE001 - the identity stage ensures it again before each deploy
            log.exception("could not provision the AWS identity of installation %s; the next deploy retries", installation_id)

    async def cancel(self, deploy_id: str, reason: str, superseded_by: str | None = None) -> None:
        """Stop a deploy: a running one is cut short (its build stopped), a pending one ends at once."""
        if self.runner is not None and await self.runner.cancel(deploy_id, reason, superseded_by):
            return  # the runner records the end and reports it

        def _cancel(conn) -> Deploy | None:
            deploy = get_deploy_in(conn, deploy_id)
            if deploy is None or deploy.state.finished:
                return None
            cancel_in(conn, deploy, superseded_by=superseded_by, reason=reason)
            return get_deploy_in(conn, deploy_id)

        cancelled = await self.deploys.store.run(_cancel)
        if cancelled is not None:
            await self.report(cancelled)

    async def cancel_builds(self, owner: str, repo: str, pr_number: int, reason: str, *,
                            superseded_by: str | None = None) -> list[str]:
        """Cancel every unfinished build check of a pull request; return their ids."""
        rows = await self.deploys.store.fetchall(
            "SELECT id FROM deploys WHERE owner = ? COLLATE NOCASE AND repo = ? COLLATE NOCASE AND kind = 'build'"
            " AND pr_number = ? AND state NOT IN ('succeeded', 'failed', 'cancelled') AND id != COALESCE(?, '')",
            (owner, repo, pr_number, superseded_by),
        )
        ids = [row["id"] for row in rows]
        for deploy_id in ids:
            await self.cancel(deploy_id, reason, superseded_by)
        return ids

    async def resume_waiting(self, owner: str, repo: str, sha: str) -> list[str]:
        """Queue again the deploys of `sha` that wait for other checks; return their ids."""

        def _resume(conn) -> list[str]:
            rows = conn.execute(
                "SELECT * FROM deploys WHERE owner = ? COLLATE NOCASE AND repo = ? COLLATE NOCASE AND sha = ?"
                " AND state = 'waiting'",
                (owner, repo, sha),
            ).fetchall()
            deploys = [Deploy.from_row(row) for row in rows]
            for deploy in deploys:
                queue_in(conn, deploy)
            return [deploy.id for deploy in deploys]

        ids = await self.deploys.store.run(_resume)
        if ids:
            self.queue.notify()
        return ids
