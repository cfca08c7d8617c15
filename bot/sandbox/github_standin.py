"""A local stand-in for the GitHub REST API and OAuth pages, for the sandbox and the tests.

It checks what GitHub checks: the App's JWT (RS256, signed by the App's key,
not expired) on `/app/...` endpoints, and installation tokens it issued itself
on repository endpoints — never the other way round. Every call is recorded,
and failures can be queued for any route.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from bot.sandbox import serve_local

API_PREFIX = "/api/v3"  # GitHub Enterprise Server serves the API under this prefix


@dataclass
class Call:
    """One request as the stand-in saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    auth: str  # "jwt", "installation", "user", "basic" or "none"
    installation_id: int | None = None
    status: int = 0


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    times: int


@dataclass
class FakeInstallation:
    id: int
    account: str
    account_type: str = "User"
    repositories: list[dict[str, Any]] = field(default_factory=list)
    permissions: dict[str, str] = field(
        default_factory=lambda: {"checks": "write", "deployments": "write", "contents": "read", "metadata": "read",
                                 "pull_requests": "read", "statuses": "read"}
    )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": {"login": self.account, "id": 1000 + self.id, "type": self.account_type},
            "app_id": 1,
            "target_type": self.account_type,
            "repository_selection": "selected",
            "permissions": self.permissions,
            "events": ["push", "pull_request", "check_run", "check_suite"],
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "suspended_at": None,
        }


def _now_iso(offset: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Route = Callable[["GitHubStandIn", web.Request, re.Match[str], Call], Awaitable[web.Response]]


class GitHubStandIn:
    """The fake GitHub; start it with `await gh.start()`, read `gh.url` and `gh.calls`."""

    def __init__(self, app_id: int, private_key_pem: str, *, client_id: str = "Iv1.sandbox", client_secret: str = "sandbox-secret") -> None:
        self.app_id = app_id
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
        self.public_key = key.public_key()
        self.client_id = client_id
        self.client_secret = client_secret
        self.calls: list[Call] = []
        self.installations: dict[int, FakeInstallation] = {}
        self.tokens: dict[str, tuple[int, float]] = {}
        self.user_tokens: dict[str, str] = {}
        self.oauth_codes: dict[str, str] = {}
        self.permissions: dict[tuple[str, str], str] = {}
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.check_suites: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.deployments: dict[int, dict[str, Any]] = {}
        self.deployment_statuses: dict[int, list[dict[str, Any]]] = {}
        self.branches: dict[str, dict[str, str]] = {}  # "owner/repo" -> branch -> sha
        self.commits: dict[str, dict[str, str]] = {}  # "owner/repo" -> ref (tag, branch or sha) -> sha
        self.lookup_delay = 0.0
        self.files: dict[tuple[str, str], dict[str, str]] = {}  # ("owner/repo", ref) -> path -> text
        self.token_lifetime = 3600.0
        self._faults: list[Fault] = []
        self._ids = itertools.count(1001)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- set-up helpers -------------------------------------------------

    def add_installation(self, installation_id: int, account: str, repos: list[dict[str, Any]] | None = None,
                         account_type: str = "User") -> FakeInstallation:
        """Register an installation and its repositories."""
        inst = FakeInstallation(installation_id, account, account_type, list(repos or []))
        self.installations[installation_id] = inst
        return inst

    def add_commit(self, full_name: str, sha: str, *, branch: str | None = None, tag: str | None = None) -> None:
        """Make a commit resolvable by SHA, and by branch or tag name."""
        refs = self.commits.setdefault(full_name.lower(), {})
        refs[sha] = sha
        if branch:
            self.branches.setdefault(full_name.lower(), {})[branch] = sha
            refs[branch] = sha
        if tag:
            refs[tag] = sha

    def add_file(self, full_name: str, path: str, text: str, *, ref: str = "main") -> None:
        """Serve a file's content at a ref (the contents API)."""
        self.files.setdefault((full_name.lower(), ref), {})[path] = text

    def set_permission(self, full_name: str, login: str, permission: str) -> None:
        """Give `login` a permission (admin, maintain, write, triage, read, none) on a repository."""
        self.permissions[(full_name.lower(), login.lower())] = permission

    def add_oauth_user(self, code: str, login: str) -> None:
        """Make `code` exchangeable for a user token of `login`."""
        self.oauth_codes[code] = login

    def add_check_suite(self, full_name: str, sha: str, *, app_slug: str, status: str, conclusion: str | None) -> dict[str, Any]:
        """Add another app's check suite on a commit (for wait_for_checks)."""
        suite = {"id": next(self._ids), "head_sha": sha, "status": status, "conclusion": conclusion,
                 "app": {"id": 9000 + len(app_slug), "slug": app_slug, "name": app_slug}}
        self.check_suites.setdefault((full_name.lower(), sha), []).append(suite)
        return suite

    def fail(self, method: str, path_regex: str, status: int, *, times: int = 1,
             headers: dict[str, str] | None = None, message: str = "Injected failure") -> None:
        """Answer the next `times` matching requests with `status`."""
        self._faults.append(Fault(method.upper(), re.compile(path_regex), status, headers or {}, {"message": message}, times))

    def requests(self, method: str | None = None, pattern: str | None = None) -> list[Call]:
        """Recorded calls, filtered by method and a path regex."""
        rx = re.compile(pattern) if pattern else None
        return [c for c in self.calls if (method is None or c.method == method) and (rx is None or rx.search(c.path))]

    # -- server ------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on a loopback port; return the base URL."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner, self.url = await serve_local(app, host, port)
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = request.path
        if path.startswith(API_PREFIX + "/"):
            path = path[len(API_PREFIX):]
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            if raw:
                ctype = request.headers.get("Content-Type", "")
                try:
                    body = await request.json() if "json" in ctype or raw[:1] in (b"{", b"[") else dict(await request.post())
                except ValueError:
                    return web.json_response({"message": "Problems parsing JSON"}, status=400)
        call = Call(request.method, path, dict(request.query), dict(request.headers), body, "none")
        self.calls.append(call)
        for fault in self._faults:
            if fault.times > 0 and fault.method == request.method and fault.pattern.search(path):
                fault.times -= 1
                call.status = fault.status
                return web.json_response(fault.body, status=fault.status, headers=fault.headers)
        for method, rx, handler in ROUTES:
            if method == request.method and (m := rx.fullmatch(path)):
                resp = await handler(self, request, m, call)
                call.status = resp.status
                return resp
        call.status = 404
        return web.json_response({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, status=404)

    # -- auth --------------------------------------------------------------

    def _check_jwt(self, request: web.Request, call: Call) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return _unauthorized("A JSON web token could not be decoded")
        try:
            claims = jwt.decode(auth[7:], self.public_key, algorithms=["RS256"], options={"require": ["exp", "iat", "iss"]})
        except jwt.PyJWTError as exc:
            return _unauthorized(f"'Expiration time' claim ('exp') or signature is invalid: {exc}")
        if str(claims.get("iss")) != str(self.app_id):
            return _unauthorized("Integration not found")
        if claims["exp"] - claims["iat"] > 660:
            return _unauthorized("'Expiration time' claim ('exp') is too far in the future")
        call.auth = "jwt"
        return None

    def _check_token(self, request: web.Request, call: Call) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("token", "bearer") or token not in self.tokens:
            return _unauthorized("Bad credentials")
        installation_id, expires = self.tokens[token]
        if expires < time.time():
            return _unauthorized("Bad credentials")
        call.auth, call.installation_id = "installation", installation_id
        return None

    def _check_repo(self, call: Call, owner: str, repo: str) -> web.Response | None:
        inst = self.installations.get(call.installation_id or -1)
        full = f"{owner}/{repo}".lower()
        if inst is None or not any(r["full_name"].lower() == full for r in inst.repositories):
            return web.json_response({"message": "Not Found"}, status=404)
        return None


def _unauthorized(message: str) -> web.Response:
    return web.json_response({"message": message, "documentation_url": "https://docs.github.com/rest"}, status=401)


# -- routes ------------------------------------------------------------------

async def _get_app(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if err := gh._check_jwt(request, call):
        return err
    return web.json_response({"id": gh.app_id, "slug": "easy-deploy", "name": "Easy Deploy", "owner": {"login": "easydeploy"},
                              "client_id": gh.client_id})


async def _get_installation(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if err := gh._check_jwt(request, call):
        return err
    inst = gh.installations.get(int(m["id"]))
    if inst is None:
        return web.json_response({"message": "Not Found"}, status=404)
    return web.json_response(inst.as_json())


async def _access_token(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if err := gh._check_jwt(request, call):
        return err
    inst = gh.installations.get(int(m["id"]))
    if inst is None:
        return web.json_response({"message": "Not Found"}, status=404)
    token = "ghs_" + secrets.token_urlsafe(27)
    gh.tokens[token] = (inst.id, time.time() + gh.token_lifetime)
    return web.json_response({"token": token, "expires_at": _now_iso(gh.token_lifetime), "permissions": inst.permissions,
                              "repository_selection": "selected"}, status=201)


async def _installation_repos(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if err := gh._check_token(request, call):
        return err
    repos = gh.installations[call.installation_id].repositories  # type: ignore[index]
    per_page = min(int(request.query.get("per_page", "30")), 100)
    page = max(int(request.query.get("page", "1")), 1)
    return web.json_response({"total_count": len(repos), "repository_selection": "selected",
                              "repositories": repos[(page - 1) * per_page:page * per_page]})


async def _get_repo(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    inst = gh.installations[call.installation_id]  # type: ignore[index]
    full = f"{m['owner']}/{m['repo']}".lower()
    return web.json_response(next(r for r in inst.repositories if r["full_name"].lower() == full))


async def _create_check_run(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    body = call.json or {}
    if not body.get("name") or not body.get("head_sha"):
        return web.json_response({"message": "Invalid request", "errors": ["name and head_sha are required"]}, status=422)
    run_id = next(gh._ids)
    run = {"id": run_id, "node_id": f"CR_{run_id}", "url": f"{gh.url}/repos/{m['owner']}/{m['repo']}/check-runs/{run_id}",
           "html_url": f"{gh.url}/{m['owner']}/{m['repo']}/runs/{run_id}", "status": "queued", "conclusion": None,
           "repository": f"{m['owner']}/{m['repo']}", **body, "app": {"id": gh.app_id, "slug": "easy-deploy"}}
    run.setdefault("status", "queued")
    gh.check_runs[run_id] = run
    return web.json_response(run, status=201)


async def _update_check_run(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    run = gh.check_runs.get(int(m["id"]))
    if run is None:
        return web.json_response({"message": "Not Found"}, status=404)
    body = dict(call.json or {})
    if body.get("conclusion") and "status" not in body:
        body["status"] = "completed"
    run.update(body)
    return web.json_response(run)


async def _get_check_run(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    run = gh.check_runs.get(int(m["id"]))
    return web.json_response(run) if run else web.json_response({"message": "Not Found"}, status=404)


async def _check_suites(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    suites = gh.check_suites.get((f"{m['owner']}/{m['repo']}".lower(), m["ref"]), [])
    return web.json_response({"total_count": len(suites), "check_suites": suites})


async def _create_deployment(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    body = call.json or {}
    if not body.get("ref"):
        return web.json_response({"message": "Invalid request", "errors": ["ref is required"]}, status=422)
    dep_id = next(gh._ids)
    dep = {"id": dep_id, "url": f"{gh.url}/repos/{m['owner']}/{m['repo']}/deployments/{dep_id}", "sha": body["ref"],
           "environment": body.get("environment", "production"), "created_at": _now_iso(), "repository": f"{m['owner']}/{m['repo']}",
           **body}
    gh.deployments[dep_id] = dep
    gh.deployment_statuses[dep_id] = []
    return web.json_response(dep, status=201)


async def _list_deployments(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    full = f"{m['owner']}/{m['repo']}".lower()
    env, sha = request.query.get("environment"), request.query.get("sha")
    found = [d for d in gh.deployments.values() if d["repository"].lower() == full and (env is None or d["environment"] == env)
             and (sha is None or d["sha"] == sha)]
    return web.json_response(sorted(found, key=lambda d: -d["id"]))


async def _create_deployment_status(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    dep_id = int(m["id"])
    if dep_id not in gh.deployments:
        return web.json_response({"message": "Not Found"}, status=404)
    status = {"id": next(gh._ids), "created_at": _now_iso(), **(call.json or {})}
    gh.deployment_statuses[dep_id].append(status)
    return web.json_response(status, status=201)


async def _list_deployment_statuses(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    return web.json_response(list(reversed(gh.deployment_statuses.get(int(m["id"]), []))))


async def _collaborator_permission(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    perm = gh.permissions.get((f"{m['owner']}/{m['repo']}".lower(), m["user"].lower()))
    if perm is None:
        return web.json_response({"message": f"{m['user']} is not a user"}, status=404)
    legacy = {"maintain": "write", "triage": "read"}.get(perm, perm)
    return web.json_response({"permission": legacy, "role_name": perm, "user": {"login": m["user"], "id": 1}})


async def _oauth_token(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    body = call.json or dict(request.query)
    if body.get("client_id") != gh.client_id or body.get("client_secret") != gh.client_secret:
        return web.json_response({"error": "incorrect_client_credentials"})
    login = gh.oauth_codes.pop(str(body.get("code")), None)
    if login is None:
        # GitHub answers 200 with an error field here.
        return web.json_response({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})
    token = "ghu_" + secrets.token_urlsafe(27)
    gh.user_tokens[token] = login
    return web.json_response({"access_token": token, "token_type": "bearer", "scope": ""})


async def _get_user(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    login = gh.user_tokens.get(token)
    if login is None:
        return _unauthorized("Bad credentials")
    call.auth = "user"
    return web.json_response({"login": login, "id": abs(hash(login)) % 10**7, "type": "User"})


async def _get_commit(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    await asyncio.sleep(gh.lookup_delay)
    refs = gh.commits.get(f"{m['owner']}/{m['repo']}".lower(), {})
    ref = m["ref"]
    sha = refs.get(ref) or next((s for s in refs.values() if len(ref) >= 7 and s.startswith(ref.lower())), None)
    if sha is None:
        return web.json_response({"message": f"No commit found for SHA: {ref}"}, status=422)
    return web.json_response({"sha": sha, "commit": {"message": "a commit"},
                              "html_url": f"{gh.url}/{m['owner']}/{m['repo']}/commit/{sha}"})


async def _get_branch(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    await asyncio.sleep(gh.lookup_delay)
    sha = gh.branches.get(f"{m['owner']}/{m['repo']}".lower(), {}).get(m["branch"])
    if sha is None:
        return web.json_response({"message": "Branch not found"}, status=404)
    return web.json_response({"name": m["branch"], "commit": {"sha": sha}, "protected": False})


async def _get_contents(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    full = f"{m['owner']}/{m['repo']}".lower()
    text = gh.files.get((full, request.query.get("ref", "main")), {}).get(m["path"])
    if text is None:
        return web.json_response({"message": "Not Found", "status": "404"}, status=404)
    raw = text.encode()
    return web.json_response({
        "type": "file", "encoding": "base64", "size": len(raw), "name": m["path"].rsplit("/", 1)[-1], "path": m["path"],
        "content": base64.b64encode(raw).decode(), "sha": hashlib.sha1(raw).hexdigest(),
    })


async def _check_runs_for_ref(gh: GitHubStandIn, request: web.Request, m: re.Match[str], call: Call) -> web.Response:
    if (err := gh._check_token(request, call)) or (err := gh._check_repo(call, m["owner"], m["repo"])):
        return err
    full, name = f"{m['owner']}/{m['repo']}".lower(), request.query.get("check_name")
    runs = [r for r in gh.check_runs.values()
            if r["repository"].lower() == full and r.get("head_sha") == m["ref"] and (name is None or r.get("name") == name)]
    runs.sort(key=lambda r: -r["id"])
    return web.json_response({"total_count": len(runs), "check_runs": runs})


_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    ("GET", re.compile(r"/app"), _get_app),
    ("GET", re.compile(r"/app/installations/(?P<id>\d+)"), _get_installation),
    ("POST", re.compile(r"/app/installations/(?P<id>\d+)/access_tokens"), _access_token),
    ("GET", re.compile(r"/installation/repositories"), _installation_repos),
    ("GET", re.compile(_REPO), _get_repo),
    ("POST", re.compile(_REPO + r"/check-runs"), _create_check_run),
    ("PATCH", re.compile(_REPO + r"/check-runs/(?P<id>\d+)"), _update_check_run),
    ("GET", re.compile(_REPO + r"/check-runs/(?P<id>\d+)"), _get_check_run),
    ("GET", re.compile(_REPO + r"/commits/(?P<ref>[^/]+)/check-suites"), _check_suites),
    ("GET", re.compile(_REPO + r"/commits/(?P<ref>[^/]+)/check-runs"), _check_runs_for_ref),
    # A ref may hold slashes (feature/login); the sub-resources of a commit are the two routes above.
    ("GET", re.compile(_REPO + r"/commits/(?P<ref>(?!.*/check-(?:suites|runs)$).+)"), _get_commit),
    ("POST", re.compile(_REPO + r"/deployments"), _create_deployment),
    ("GET", re.compile(_REPO + r"/deployments"), _list_deployments),
    ("POST", re.compile(_REPO + r"/deployments/(?P<id>\d+)/statuses"), _create_deployment_status),
    ("GET", re.compile(_REPO + r"/deployments/(?P<id>\d+)/statuses"), _list_deployment_statuses),
    ("GET", re.compile(_REPO + r"/collaborators/(?P<user>[^/]+)/permission"), _collaborator_permission),
    ("GET", re.compile(_REPO + r"/branches/(?P<branch>.+)"), _get_branch),
    ("GET", re.compile(_REPO + r"/contents/(?P<path>.+)"), _get_contents),
    ("POST", re.compile(r"/login/oauth/access_token"), _oauth_token),
    ("GET", re.compile(r"/user"), _get_user),
]


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll `predicate` until true or `timeout` (a helper for tests and the demo)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()
