"""Who may do what: repository lookup, GitHub permission levels and ref resolution for Slack commands."""

from __future__ import annotations

import sqlite3
from enum import IntEnum
from typing import Any
from urllib.parse import quote

from bot.github import BadRequest, GitHubApp, NotFound
from bot.slack.commands import SHA_RE, RepoName
from bot.store import Store
from bot.tenants import RepoRecord, Tenants

MAX_BARE_CANDIDATES = 10


class Refused(Exception):
    """The command cannot go ahead; the message tells the person why and what to do."""


class Access(IntEnum):
    """GitHub's repository roles, ordered."""

    NONE = 0
    READ = 1
    TRIAGE = 2
    WRITE = 3
    MAINTAIN = 4
    ADMIN = 5


ROLE_NAMES = {a.name.lower(): a for a in Access}


def access_from_permission(body: Any) -> Access:
    """The access an answer of GET …/collaborators/{user}/permission grants.

    `role_name` is exact (maintain, triage) but may be a custom role's name; the
    legacy `permission` (admin, write, read, none) is the fallback.
    """
    if not isinstance(body, dict):
        return Access.NONE
    for name in (body.get("role_name"), body.get("permission")):
        if isinstance(name, str) and name.lower() in ROLE_NAMES:
            return ROLE_NAMES[name.lower()]
    return Access.NONE


def needed_access(write: bool) -> Access:
    """Write for deploy, rollback, lock and unlock; read for the rest."""
    return Access.WRITE if write else Access.READ


async def permission_of(github: GitHubApp, repo: RepoRecord, login: str) -> Access:
    """The GitHub user's access to the repository, asked with the installation token."""
    try:
        body = await github.request(repo.installation_id, "GET",
                                    f"/repos/{repo.owner}/{repo.name}/collaborators/{quote(login, safe='')}/permission")
    except NotFound:
        return Access.NONE  # not a collaborator (or not a GitHub user any more)
    return access_from_permission(body)


def _repos_named_in(conn: sqlite3.Connection, name: str) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT full_name FROM repositories WHERE name = ? COLLATE NOCASE AND enabled = 1 ORDER BY full_name LIMIT ?",
        (name, MAX_BARE_CANDIDATES + 1),
    ).fetchall()


async def find_repo(tenants: Tenants, store: Store, github: GitHubApp, name: RepoName, login: str) -> RepoRecord:
    """The repository a command names, installed, enabled and on an active installation; else Refused."""
    if name.full_name is None:
        full_name = await _pick_bare(tenants, store, github, name.name, login)
    else:
        full_name = name.full_name
    repo = await tenants.repo(full_name)
    if repo is None:
        raise Refused(f"Easy Deploy is not installed on `{full_name}`. Install the GitHub App on the repository first.")
    if not repo.enabled:
        raise Refused(f"`{repo.full_name}` is not enabled for Easy Deploy: add it to the App's installation on GitHub.")
    tenant = await tenants.get(repo.installation_id)
    if tenant is None or not tenant.active:
        raise Refused(f"The Easy Deploy installation on `{repo.owner}` is suspended or removed, so `{repo.full_name}` cannot be used.")
    return repo


async def _pick_bare(tenants: Tenants, store: Store, github: GitHubApp, name: str, login: str) -> str:
    rows = await store.run(_repos_named_in, name)
    candidates = [r["full_name"] for r in rows]
    if not candidates:
        raise Refused(f"I know no repository named `{name}`. Use `owner/{name}`.")
    if len(candidates) == 1:
        return candidates[0]
    # Several installations have one: keep those this user can see.
    visible = []
    for full_name in candidates[:MAX_BARE_CANDIDATES]:
        repo = await tenants.repo(full_name)
        if repo is not None and await permission_of(github, repo, login) >= Access.READ:
            visible.append(full_name)
    if len(visible) == 1:
        return visible[0]
    listed = ", ".join(f"`{c}`" for c in (visible or candidates)[:5])
    raise Refused(f"`{name}` is ambiguous ({listed}). Use `owner/{name}`.")


async def require_access(github: GitHubApp, repo: RepoRecord, login: str, need: Access) -> Access:
    """The user's access if it is at least `need`; else Refused, saying what is missing."""
    have = await permission_of(github, repo, login)
    if have < need:
        want = "write (or maintain, admin)" if need >= Access.WRITE else "read"
        has = "no access" if have is Access.NONE else f"{have.name.lower()} access"
        raise Refused(f"GitHub user `{login}` has {has} to `{repo.full_name}`; this needs {want} permission.")
    return have


async def resolve_ref(github: GitHubApp, repo: RepoRecord, ref: str | None) -> tuple[str, str, str]:
    """(SHA, full ref, default branch) for a branch, tag or SHA; the default branch when `ref` is None."""
    base = f"/repos/{repo.owner}/{repo.name}"
    default = repo.default_branch
    if not default:
        default = str((await github.request(repo.installation_id, "GET", base))["default_branch"])
    name = ref or default
    if SHA_RE.fullmatch(name):
        commit = await _get_or_none(github, repo, f"{base}/commits/{name}")
        if commit is not None and str(commit.get("sha", "")).startswith(name.lower()):
            return str(commit["sha"]), str(commit["sha"]), default
    for prefix in ("refs/heads/", "heads/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if not name.startswith(("refs/tags/", "tags/")):
        branch = await _get_or_none(github, repo, f"{base}/branches/{quote(name, safe='')}")
        if branch is not None:
            return str(branch["commit"]["sha"]), f"refs/heads/{name}", default
    tag = name.removeprefix("refs/").removeprefix("tags/")
    commit = await _get_or_none(github, repo, f"{base}/commits/{quote(tag, safe='')}")
    if commit is None:
        raise Refused(f"`{repo.full_name}` has no branch, tag or commit `{ref or default}`.")
    return str(commit["sha"]), f"refs/tags/{tag}", default


async def clone_url_of(github: GitHubApp, repo: RepoRecord, web_url: str) -> str:
    """The repository's clone URL as GitHub gives it (Enterprise Server and the sandbox differ from github.com)."""
    body = await _get_or_none(github, repo, f"/repos/{repo.owner}/{repo.name}")
    url = (body or {}).get("clone_url")
    return url if isinstance(url, str) and url else f"{web_url}/{repo.owner}/{repo.name}.git"


async def _get_or_none(github: GitHubApp, repo: RepoRecord, path: str) -> dict[str, Any] | None:
    try:
        body = await github.request(repo.installation_id, "GET", path)
    except BadRequest as exc:
        # 404, or 422 "No commit found for SHA": it is not there.
        if exc.status in (404, 422):
            return None
        raise
    return body if isinstance(body, dict) else None
