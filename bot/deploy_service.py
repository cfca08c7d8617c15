"""The deploy service: the single entry point for asking for a deploy, and the deploy job.

Reporters (GitHub check runs and deployments, Slack messages) are told about
every change; a reporter that fails never fails the deploy.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.deploys import (
    Deploy,
    DeployIntent,
    DeployRequested,
    DeployState,
    DeployStore,
    Trigger,
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
        return DeployIntent(
            installation_id=target.installation_id, owner=target.owner, repo=target.repo, sha=target.sha, ref=target.ref,
            default_branch=target.default_branch, clone_url=target.clone_url, environment=environment, kind="rollback",
            trigger=trigger, actor=actor, rollback_task_definition=target.result["task_definition_arn"],
        )

    async def provision_tenant(self, installation_id: int, owner: str) -> None:
        """Create the tenant's AWS identity (when a pipeline is configured)."""
        if self._provision is not None:
            await self._provision(installation_id, owner)
