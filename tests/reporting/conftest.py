"""Fixtures for the reporting tests: a service with the reporting extension and the PR / check handlers.

The deploy job is written elsewhere, so these tests play its part: they move a
deploy record (`advance`) and call `DeployService.report`, exactly as the job does.
Every test ends by validating each request the stand-in saw against GitHub's REST
description, and its authentication.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from typing import Any

import pytest

from bot.app import build_services, create_app, github_router
from bot.deploy_service import DeployService
from bot.deploys import Deploy, DeployState
from bot.queue import Job
from bot.reporting.extension import GitHubReportingExtension
from bot.reporting.github import REPORT_JOB
from bot.routing import Router
from handlers import check_run, pull_request
from tests.conftest import FAST_RETRY, Service, add_fixture_installation, load_webhook

OWNER, REPO = "Codertocat", "Hello-World"
INSTALLATION = 1  # the installation GitHub's example payloads name
SHA_A = "a" * 40
SHA_B = "b" * 40
SHA_C = "c" * 40


def reporting_router() -> Router:
    """The service's router plus the PR and check handlers (unless `github_router` has them already)."""
    base = github_router()
    extra = [r for r, probe in ((pull_request.router, ("pull_request", "opened")), (check_run.router, ("check_run", "rerequested")))
             if not base.handles(*probe)]
    return Router(base, *extra)


async def _deploy_job_played_by_the_test(job: Job) -> None:
    """The tests move deploys themselves (see `advance`)."""


class DeployOps:
    """Records the DeployService calls the handlers make, then makes them for real."""

    def __init__(self, deploys: DeployService) -> None:
        self.deploys = deploys
        self.calls: list[tuple] = []
        self._real = {name: getattr(deploys, name) for name in ("cancel", "cancel_builds", "resume_waiting")}

    async def cancel(self, deploy_id: str, reason: str, superseded_by: str | None = None) -> None:
        self.calls.append(("cancel", deploy_id, reason, superseded_by))
        await self._real["cancel"](deploy_id, reason, superseded_by)

    async def cancel_builds(self, owner: str, repo: str, pr_number: int, reason: str, *,
                            superseded_by: str | None = None) -> list[str]:
        self.calls.append(("cancel_builds", owner, repo, pr_number, reason, superseded_by))
        return await self._real["cancel_builds"](owner, repo, pr_number, reason, superseded_by=superseded_by)

    async def resume_waiting(self, owner: str, repo: str, sha: str) -> list[str]:
        self.calls.append(("resume_waiting", owner, repo, sha))
        return await self._real["resume_waiting"](owner, repo, sha)


class ReportingService(Service):
    """A running service with GitHub reporting, and helpers to play the deploy job."""

    ops: DeployOps

    async def idle(self, timeout: float = 15.0) -> None:
        """Wait until no job is pending, report retries included (the base helper skips jobs due in over ~1 s)."""
        deadline = time.monotonic() + timeout
        while True:
            await super().idle(timeout)
            if not await self.count("SELECT COUNT(*) FROM jobs WHERE kind = ? AND state IN ('queued', 'running')", (REPORT_JOB,)):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("github_report jobs still pending")
            await asyncio.sleep(0.02)

    async def deploy(self, deploy_id: str) -> Deploy:
        deploy = await self.services.deploy_store.get(deploy_id)
        assert deploy is not None
        return deploy

    async def deploy_by_key(self, key: str) -> Deploy:
        row = await self.services.store.fetchone("SELECT id FROM deploys WHERE key = ?", (key,))
        assert row is not None, f"no deploy with key {key}"
        return await self.deploy(row["id"])

    async def advance(self, deploy_id: str, **fields: Any) -> Deploy:
        """Change the record and report it, as the deploy job does after every change."""
        if isinstance(fields.get("state"), DeployState) and fields["state"].finished:
            fields.setdefault("finished_at", 1_800_000_000.0)
        await self.services.deploy_store.update(deploy_id, **fields)
        deploy = await self.deploy(deploy_id)
        await self.services.deploys.report(deploy)
        return deploy

    async def push(self, sha: str = SHA_A, *, delivery: str | None = None) -> Deploy:
        """A push of `sha` to the default branch, through the webhook; the deploy it made."""
        payload = push_payload(sha)
        delivery = delivery or str(uuid.uuid4())
        resp = await self.webhook("push", payload, delivery=delivery)
        assert resp.status == 202
        await self.idle()
        return await self.deploy_by_key("delivery:" + delivery)

    async def send(self, event: str, payload: dict, *, delivery: str | None = None) -> str:
        """Any webhook, then wait for the work it queued; returns the delivery id."""
        delivery = delivery or str(uuid.uuid4())
        resp = await self.webhook(event, payload, delivery=delivery)
        assert resp.status in (200, 202), await resp.text()  # 200: a duplicate delivery
        await self.idle()
        return delivery

    async def stop(self) -> None:
        """Stop the service as a deploy would see a restart (workers drained, store closed)."""
        await self.client.close()


def push_payload(sha: str) -> dict:
    """GitHub's example push to the default branch, of `sha`."""
    payload = copy.deepcopy(load_webhook("push", "04.json"))
    payload["after"] = sha
    payload["head_commit"]["id"] = sha
    return payload


def stage(state: str, started: float | None = None, finished: float | None = None, *, message: str = "",
          **outputs: Any) -> dict[str, Any]:
    """One stage entry as the deploy job writes it."""
    return {"state": state, "started_at": started, "finished_at": finished, "message": message, "outputs": outputs}


T0 = 1_700_000_000.0


def stages_done(*names: str, running: str | None = None, failed: str | None = None) -> dict[str, Any]:
    """Stages that finished in order (10 s each), then maybe one running or failed."""
    out, t = {}, T0
    for name in names:
        out[name] = stage("succeeded", t, t + 10)
        t += 10
    if running:
        out[running] = stage("running", t)
    if failed:
        out[failed] = stage("failed", t, t + 75)
    return out


@pytest.fixture
def start_reporting(aiohttp_client, make_settings, github):
    """Start a service with reporting: `await start_reporting(**settings_overrides)`."""

    async def _start(*, start_workers: bool = True, **overrides: Any) -> ReportingService:
        add_fixture_installation(github, push_payload(SHA_A))
        settings = make_settings(**overrides)
        services = await build_services(settings, router=reporting_router(), github_retry=FAST_RETRY,
                                        extensions=[GitHubReportingExtension(retry_base=0.05, retry_cap=0.3)])
        services.job_handlers.setdefault("deploy", _deploy_job_played_by_the_test)
        ops = DeployOps(services.deploys)
        for name in ("cancel", "cancel_builds", "resume_waiting"):
            setattr(services.deploys, name, getattr(ops, name))
        client = await aiohttp_client(create_app(services, start_workers=start_workers))
        svc = ReportingService(client, services)
        svc.ops = ops
        return svc

    return _start


@pytest.fixture
async def svc(start_reporting) -> ReportingService:
    """A running service with reporting."""
    return await start_reporting()
