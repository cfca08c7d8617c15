"""Shared fixtures: the GitHub stand-in, signed webhook requests, a service on a temp store."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from bot.app import Services, build_services, create_app
from bot.github import RetryPolicy
from bot.sandbox import generate_private_key
from bot.sandbox.github_standin import GitHubStandIn
from bot.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
WEBHOOK_FIXTURES = FIXTURES / "github" / "webhooks"
WEBHOOK_SECRET = "It's a Secret to Everybody"
APP_ID = 4242
INSTALLATION_ID = 2


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's environment, .env or git config."""
    for name in list(os.environ):
        if name.startswith("EASYDEPLOY_") or name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.com")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def app_private_key() -> str:
    """One RSA key for the test App (generating one costs ~50 ms)."""
    return generate_private_key()


def load_webhook(event: str, name: str | None = None) -> dict[str, Any]:
    """A real GitHub example payload: the first of `event`, or the file `name`."""
    folder = WEBHOOK_FIXTURES / event
    path = folder / name if name else sorted(folder.iterdir())[0]
    return json.loads(path.read_text())


def webhook_fixture_files() -> list[Path]:
    """Every stored example payload."""
    return sorted(WEBHOOK_FIXTURES.glob("*/*.json"))


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    """GitHub's X-Hub-Signature-256 value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_headers(event: str, body: bytes, *, delivery: str | None = None, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    """Headers as GitHub sends them."""
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, secret),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/abc123",
    }


@pytest.fixture
async def github(app_private_key: str) -> AsyncIterator[GitHubStandIn]:
    """The local GitHub stand-in, serving on a loopback port."""
    gh = GitHubStandIn(APP_ID, app_private_key)
    await gh.start()
    yield gh
    await gh.stop()


@pytest.fixture(autouse=True)
def _github_requests_conform(request, _isolated_env):
    """Wherever the GitHub stand-in served a test, every request matches GitHub's REST description and auth rules."""
    github = request.getfixturevalue("github") if "github" in request.fixturenames else None
    yield
    if isinstance(github, GitHubStandIn) and not request.node.get_closest_marker("nonconforming_requests"):
        from tests.github_openapi import assert_conforms

        assert_conforms(github, allow_not_rest=True)


@pytest.fixture
def make_settings(tmp_path: Path, github: GitHubStandIn, app_private_key: str) -> Callable[..., Settings]:
    """Settings pointing at the stand-in and a temp data dir; keyword overrides win."""

    def _make(**overrides: Any) -> Settings:
        values: dict[str, Any] = dict(
            github_app_id=APP_ID,
            github_private_key=app_private_key,
            github_webhook_secret=WEBHOOK_SECRET,
            github_api_url=github.url,
            github_web_url=github.url,
            data_dir=tmp_path / "data",
            workers=2,
            drain_timeout=5,
        )
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return _make


FAST_RETRY = RetryPolicy(attempts=3, backoff=0.01, max_wait=2)


class Service:
    """A running service under test: its HTTP client, its services and helpers to send webhooks."""

    def __init__(self, client: TestClient, services: Services) -> None:
        self.client = client
        self.services = services

    async def webhook(self, event: str, payload: dict | bytes, *, delivery: str | None = None,
                      headers: dict[str, str] | None = None):
        """POST a correctly signed webhook; return the response."""
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        all_headers = webhook_headers(event, body, delivery=delivery)
        all_headers.update(headers or {})
        return await self.client.post("/github/webhooks", data=body, headers=all_headers)

    async def idle(self, timeout: float = 15.0) -> None:
        """Wait until no job that this service can run is queued or running."""
        import asyncio
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            kinds = sorted(self.services.job_handlers)
            row = await self.services.store.fetchone(
                "SELECT COUNT(*) FROM jobs WHERE (state = 'running' OR (state = 'queued' AND not_before <= ?))"
                f" AND kind IN ({','.join('?' * len(kinds))})",
                (time.time() + 1, *kinds),
            )
            if row[0] == 0:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError("jobs still pending: " + str([dict(r) for r in await self.services.store.fetchall("SELECT id, kind, state, last_error FROM jobs WHERE state IN ('queued','running')")]))

    async def count(self, sql: str, params: tuple = ()) -> int:
        row = await self.services.store.fetchone(sql, params)
        return int(row[0])


@pytest.fixture
def start_service(aiohttp_client, make_settings):
    """Start a service: `await start_service(**settings_overrides)`."""

    async def _start(*, start_workers: bool = True, extensions=(), **overrides: Any) -> Service:
        """Extensions default to none: the foundation alone. Pass them to test a feature."""
        settings = make_settings(**overrides)
        services = await build_services(settings, github_retry=FAST_RETRY, extensions=list(extensions))
        client = await aiohttp_client(create_app(services, start_workers=start_workers))
        return Service(client, services)

    return _start


@pytest.fixture(scope="session")
def moto_endpoint():
    """One AWS emulator for the session (each test uses its own app names)."""
    from bot.pipeline.sandbox import start_embedded_moto

    endpoint, stop = start_embedded_moto()
    yield endpoint
    stop()


@pytest.fixture
async def service(start_service) -> Service:
    """A running service with the default features and workers."""
    return await start_service()


def add_fixture_installation(github: GitHubStandIn, payload: dict, installation_id: int | None = None) -> None:
    """Teach the stand-in the installation and repository a payload names."""
    repo = payload.get("repository")
    inst_id = installation_id or (payload.get("installation") or {}).get("id") or INSTALLATION_ID
    repos = [repo] if repo else []
    owner = repo["owner"]["login"] if repo else "octo-org"
    if inst_id in github.installations:
        existing = github.installations[inst_id]
        if repo and all(r["full_name"] != repo["full_name"] for r in existing.repositories):
            existing.repositories.append(repo)
    else:
        github.add_installation(inst_id, owner, repos)
