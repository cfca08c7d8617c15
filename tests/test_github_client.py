"""The GitHub App client against the stand-in: auth, token cache, retries and their limits."""

from __future__ import annotations

import time

import aiohttp
import pytest

from bot.github import BadRequest, GitHubApp, GitHubBroken, NotFound, RateLimitExceeded, RetryPolicy, rate_limit_wait
from tests.conftest import APP_ID


@pytest.fixture
async def client(github, app_private_key):
    github.add_installation(7, "octo", [{"id": 1, "name": "hello", "full_name": "octo/hello", "owner": {"login": "octo"}}])
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with aiohttp.ClientSession() as http:
        app = GitHubApp(APP_ID, app_private_key, github.url, http, retry=RetryPolicy(attempts=4, backoff=0.01, max_wait=120),
                        sleep=fake_sleep)
        app.sleeps = sleeps  # type: ignore[attr-defined]
        yield app


async def test_app_endpoint_uses_jwt_and_repo_endpoint_uses_installation_token(client, github):
    await client.request(7, "GET", "/repos/octo/hello")
    assert [(c.path, c.auth) for c in github.calls] == [
        ("/app/installations/7/access_tokens", "jwt"),
        ("/repos/octo/hello", "installation"),
    ]
    assert all(c.headers["User-Agent"].startswith("easydeploy/") for c in github.calls)


async def test_installation_token_is_cached_until_five_minutes_before_expiry(client, github):
    await client.request(7, "GET", "/repos/octo/hello")
    await client.request(7, "GET", "/repos/octo/hello")
    assert len(github.requests("POST", "access_tokens")) == 1
    github.token_lifetime = 200  # under the five-minute margin: never reused
    client.forget_token(7)
    await client.request(7, "GET", "/repos/octo/hello")
    await client.request(7, "GET", "/repos/octo/hello")
    assert len(github.requests("POST", "access_tokens")) == 3


async def test_5xx_is_retried_with_backoff(client, github):
    github.fail("GET", r"^/repos/octo/hello$", 502, times=2)
    data = await client.request(7, "GET", "/repos/octo/hello")
    assert data["full_name"] == "octo/hello"
    assert len(client.sleeps) == 2 and client.sleeps[0] < client.sleeps[1]


async def test_5xx_that_persists_raises_github_broken(client, github):
    github.fail("GET", r"^/repos/octo/hello$", 500, times=10)
    with pytest.raises(GitHubBroken):
        await client.request(7, "GET", "/repos/octo/hello")
    assert len(github.requests("GET", r"^/repos/octo/hello$")) == 4


async def test_other_4xx_are_not_retried(client, github):
    github.fail("GET", r"^/repos/octo/hello$", 422, times=5)
    with pytest.raises(BadRequest) as err:
        await client.request(7, "GET", "/repos/octo/hello")
    assert err.value.status == 422
    assert len(github.requests("GET", r"^/repos/octo/hello$")) == 1
    with pytest.raises(NotFound):
        await client.request(7, "GET", "/repos/octo/missing")


async def test_secondary_rate_limit_honours_retry_after(client, github):
    github.fail("GET", r"^/repos/octo/hello$", 403, times=1, headers={"Retry-After": "7"})
    await client.request(7, "GET", "/repos/octo/hello")
    assert client.sleeps == [7.0]


async def test_primary_rate_limit_waits_for_reset(client, github):
    reset = int(time.time()) + 30
    github.fail("GET", r"^/repos/octo/hello$", 403, times=1,
                headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    await client.request(7, "GET", "/repos/octo/hello")
    assert 25 <= client.sleeps[0] <= 32


async def test_rate_limit_longer_than_allowed_raises(client, github):
    github.fail("GET", r"^/repos/octo/hello$", 429, times=1, headers={"Retry-After": "3600"})
    with pytest.raises(RateLimitExceeded):
        await client.request(7, "GET", "/repos/octo/hello")


async def test_revoked_token_is_replaced_once(client, github):
    await client.request(7, "GET", "/repos/octo/hello")
    github.tokens.clear()  # GitHub revoked every token
    await client.request(7, "GET", "/repos/octo/hello")
    assert len(github.requests("POST", "access_tokens")) == 2


async def test_enterprise_server_base_url(github, app_private_key):
    github.add_installation(7, "octo", [{"id": 1, "name": "hello", "full_name": "octo/hello", "owner": {"login": "octo"}}])
    async with aiohttp.ClientSession() as http:
        app = GitHubApp(APP_ID, app_private_key, github.url + "/api/v3", http)
        await app.request(7, "GET", "/repos/octo/hello")
    assert [c.path for c in github.calls] == ["/app/installations/7/access_tokens", "/repos/octo/hello"]


def test_rate_limit_wait_is_a_pure_decision():
    assert rate_limit_wait(403, {"Retry-After": "5"}, 0) == 5
    assert rate_limit_wait(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "100"}, 50) == 51
    assert rate_limit_wait(403, {}, 0) is None  # a plain permission error
    assert rate_limit_wait(500, {"Retry-After": "5"}, 0) is None
