"""The composition root: builds the services from settings and serves them over aiohttp.

This is the one visible place where the handler routers are combined.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from bot import __version__
from bot.context import Context
from bot.deploy_service import DeployService, Reporter
from bot.deploys import DEPLOYS_SCHEMA, DeployStore
from bot.events import installation_id_of, parse_event
from bot.github import GitHubApp, GitHubError, RetryPolicy, current_delivery
from bot.ingress import GroupCommitter, WebhookIngress
from bot.metrics import CONTENT_TYPE_LATEST, Metrics
from bot.pipeline.source import validate_owner, validate_repo
from bot.queue import Job, JobHandler, JobQueue, WorkerGroup, WorkerPool
from bot.routing import Router
from bot.sandbox import sandbox_github_credentials
from bot.settings import Settings
from bot.store import Store
from bot.tenants import Tenants
from handlers import check_run, installation, pull_request, push

log = logging.getLogger(__name__)


def github_router() -> Router:
    """Every webhook handler of the service, combined."""
    return Router(installation.router, push.router, pull_request.router, check_run.router)


@dataclass
class Services:
    """Everything the service runs on; built once at start-up."""

    settings: Settings
    store: Store
    queue: JobQueue
    tenants: Tenants
    deploy_store: DeployStore
    deploys: DeployService
    github: GitHubApp
    router: Router
    metrics: Metrics
    http: aiohttp.ClientSession
    webhook_secret: bytes
    workers: WorkerGroup | None = None
    job_handlers: dict[str, JobHandler] = field(default_factory=dict)
    extensions: list["Extension"] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    def context(self, delivery_id: str, event: str, action: str | None) -> Context:
        """The handler context for one delivery."""
        adapter = logging.LoggerAdapter(logging.getLogger("handlers"), {"delivery_id": delivery_id})
        return Context(delivery_id, event, action, self.settings, self.github, self.tenants, self.deploys, adapter)


def resolve_github_credentials(settings: Settings) -> tuple[int, str, str]:
    """The App id, key and webhook secret; the sandbox makes its own when none are set."""
    if settings.github_app_id and settings.github_private_key and settings.github_webhook_secret:
        return (settings.github_app_id, settings.github_private_key.get_secret_value(),
                settings.github_webhook_secret.get_secret_value())
    if not settings.sandbox:
        raise ValueError("EASYDEPLOY_GITHUB_APP_ID, EASYDEPLOY_GITHUB_PRIVATE_KEY and EASYDEPLOY_GITHUB_WEBHOOK_SECRET are required")
    creds = sandbox_github_credentials(settings.data_dir)
    return (
        settings.github_app_id or creds.app_id,
        settings.github_private_key.get_secret_value() if settings.github_private_key else creds.private_key,
        settings.github_webhook_secret.get_secret_value() if settings.github_webhook_secret else creds.webhook_secret,
    )


async def build_services(
    settings: Settings,
    *,
    router: Router | None = None,
    github_retry: RetryPolicy | None = None,
    reporters: list[Reporter] | None = None,
    extensions: list["Extension"] | None = None,
) -> Services:
    """Open the store and make the clients (no network calls yet)."""
    store = Store.from_url(settings.effective_state_url)
    store.add_schema(DEPLOYS_SCHEMA)
    extensions = default_extensions() if extensions is None else extensions
    for extension in extensions:
        extension.schema(store)
    await store.open()
    queue = JobQueue(store)
    app_id, private_key, secret = resolve_github_credentials(settings)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30, connect=10))
    github = GitHubApp(app_id, private_key, settings.github_api_url, http, retry=github_retry)
    deploy_store = DeployStore(store)
    deploys = DeployService(deploy_store, queue, reporters)
    services = Services(
        settings=settings, store=store, queue=queue, tenants=Tenants(store), deploy_store=deploy_store, deploys=deploys,
        github=github, router=router or github_router(), metrics=Metrics(), http=http, webhook_secret=secret.encode(),
        extensions=extensions,
    )
    services.job_handlers["webhook"] = lambda job: run_webhook_job(services, job)
    for extension in extensions:
        await extension.setup(services)
    return services


async def installation_repositories(github: GitHubApp, installation_id: int, *, max_pages: int = 50) -> list[dict]:
    """Every repository an installation enables, page by page (100 a page, as GitHub allows at most)."""
    repos: list[dict] = []
    for page in range(1, max_pages + 1):
        listing = await github.request(installation_id, "GET", "/installation/repositories",
                                       params={"per_page": "100", "page": str(page)})
        batch = listing.get("repositories", []) if isinstance(listing, dict) else []
        repos += batch
        total = listing.get("total_count", 0) if isinstance(listing, dict) else 0
        if len(batch) < 100 or len(repos) >= total:
            break
    return repos


async def ensure_installation(services: Services, installation_id: int) -> bool:
    """Fetch an installation the service has not seen from GitHub; False if it is not active."""
    tenant = await services.tenants.get(installation_id)
    if tenant is None:
        inst = await services.github.app_request("GET", f"/app/installations/{installation_id}")
        await services.tenants.save_installation(inst, await installation_repositories(services.github, installation_id))
        await services.deploys.provision_tenant(installation_id, (inst.get("account") or {}).get("login", str(installation_id)))
        tenant = await services.tenants.get(installation_id)
    return tenant is not None and tenant.active


def hostile_repository(model: object) -> str | None:
    """Why an event's repository names cannot be used as paths and URL parts, or None if they can."""
    repo = getattr(model, "repository", None)
    if repo is None:
        return None
    try:
        validate_owner(repo.owner.login)
        validate_repo(repo.name)
    except ValueError as exc:
        return f"repository name refused ({exc})"
    if repo.full_name.lower() != f"{repo.owner.login}/{repo.name}".lower():
        return "repository full_name does not match its owner and name"
    return None


async def run_webhook_job(services: Services, job: Job) -> None:
    """Dispatch a recorded delivery to the handlers registered for it."""
    event, action, delivery = job.payload["event"], job.payload.get("action"), job.payload["delivery"]
    token = current_delivery.set(delivery)
    try:
        try:
            model = parse_event(event, job.payload["data"])
        except ValidationError as exc:
            # Ingress checked the required fields are there; a wrong type is a payload we cannot use.
            log.warning("%s.%s ignored: payload does not fit the model: %s", event, action, exc.errors()[:3])
            return
        if (problem := hostile_repository(model)) is not None:
            log.warning("%s.%s ignored: %s", event, action, problem)
            return
        installation_id = installation_id_of(model)
        if installation_id is not None and event != "installation":
            try:
                if not await ensure_installation(services, installation_id):
                    log.info("%s.%s ignored: installation %s is suspended or deleted", event, action, installation_id)
                    return
            except GitHubError as exc:
                if exc.status in (401, 403, 404):
                    log.warning("%s.%s ignored: installation %s unknown to GitHub (%s)", event, action, installation_id, exc)
                    return
                raise
        ctx = services.context(delivery, event, action)
        for handler in services.router.handlers_for(event, action):
            await handler(model, ctx)
    finally:
        current_delivery.reset(token)


# -- HTTP ---------------------------------------------------------------------

SERVICES_KEY = web.AppKey("services", Services)
LONG_JOB_KINDS = ("deploy",)  # jobs that run for minutes get a pool of their own


async def healthz(request: web.Request) -> web.Response:
    """200 when the store and the workers are up, else 503."""
    services = request.app[SERVICES_KEY]
    store_ok = await services.store.ping()
    workers_ok = services.workers is not None and services.workers.alive
    depth = await services.queue.depth() if store_ok else None
    ok = store_ok and workers_ok
    body = {"status": "ok" if ok else "unavailable", "mode": services.settings.aws_mode.value, "version": __version__,
            "queue_depth": depth, "store": store_ok, "workers": workers_ok}
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    services = request.app[SERVICES_KEY]
    if await services.store.ping():
        services.metrics.queue_depth.set(await services.queue.depth())
    return web.Response(body=services.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(services: Services, *, start_workers: bool = True) -> web.Application:
    """The aiohttp application; workers start with it and drain when it stops."""
    settings = services.settings
    app = web.Application(client_max_size=settings.max_webhook_bytes)
    app[SERVICES_KEY] = services
    committer = GroupCommitter(services.store, services.queue)
    ingress = WebhookIngress(services.webhook_secret, services.router, committer,
                             services.metrics, settings.max_webhook_bytes)
    app.router.add_post("/github/webhooks", ingress.handle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    for extension in services.extensions:
        extension.routes(app, services)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await services.queue.recover()
        for extension in services.extensions:
            await extension.started(services)
        if start_workers:
            def observe(job: Job, outcome: str, secs: float) -> None:
                services.metrics.job_seconds.labels(job.kind, outcome).observe(secs)

            # Deploys take minutes; webhooks and reports take milliseconds and must not queue
            # behind them (a push's check run appears at once even while deploys run).
            long_kinds = frozenset(LONG_JOB_KINDS) & frozenset(services.job_handlers)
            short_kinds = frozenset(services.job_handlers) - long_kinds
            pools = [WorkerPool(services.queue, services.job_handlers, size=settings.workers, on_job_done=observe,
                                kinds=kinds) for kinds in (short_kinds, long_kinds) if kinds]
            services.workers = WorkerGroup(*pools)
            services.workers.start()
        log.info(
            "easydeploy %s: mode=%s github=%s aws=%s webhook signature verification enforced",
            __version__, settings.aws_mode.value, settings.github_api_url,
            services.extras.get("aws_endpoint") or settings.aws_endpoint_url or "aws default",
        )
        yield
        if services.workers is not None:
            await services.workers.stop(settings.drain_timeout)
        committer.close()
        await close_services(services)

    app.cleanup_ctx.append(lifecycle)
    return app


async def close_services(services: Services) -> None:
    """Release what `build_services` opened."""
    for extension in reversed(services.extensions):
        await extension.close(services)
    await services.store.close()
    await services.http.close()


class Extension:
    """A feature that adds tables, routes, job kinds or reporters to the service."""

    def schema(self, store: Store) -> None: ...

    async def setup(self, services: Services) -> None: ...

    def routes(self, app: web.Application, services: Services) -> None: ...

    async def started(self, services: Services) -> None: ...

    async def close(self, services: Services) -> None: ...


def default_extensions() -> list[Extension]:
    """The features the service runs with, in order (the pipeline, GitHub reporting, Slack)."""
    from bot.deploy_job import PipelineExtension
    from bot.reporting.extension import GitHubReportingExtension
    from bot.slack.extension import SlackExtension

    return [PipelineExtension(), GitHubReportingExtension(), SlackExtension()]
