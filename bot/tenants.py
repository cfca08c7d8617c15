"""Tenants: GitHub App installations and the repositories they enable."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from bot.store import Store, now


@dataclass(frozen=True)
class Tenant:
    """An installation as stored."""

    id: int
    account_login: str
    account_type: str
    suspended: bool
    deleted: bool

    @property
    def active(self) -> bool:
        """True when the App may act for this installation."""
        return not (self.suspended or self.deleted)


@dataclass(frozen=True)
class RepoRecord:
    """A repository of an installation."""

    id: int
    installation_id: int
    owner: str
    name: str
    full_name: str
    default_branch: str | None
    private: bool
    enabled: bool


def _upsert_installation(conn: sqlite3.Connection, inst: dict[str, Any]) -> None:
    account = inst.get("account") or {}
    ts = now()
    conn.execute(
        "INSERT INTO installations (id, account_login, account_type, repository_selection, suspended, deleted,"
        " permissions, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET account_login = excluded.account_login,"
        " account_type = excluded.account_type, repository_selection = excluded.repository_selection,"
        " suspended = excluded.suspended, deleted = 0, permissions = excluded.permissions,"
        " updated_at = excluded.updated_at",
        (
            inst["id"],
            account.get("login", "unknown"),
            account.get("type") or inst.get("target_type") or "User",
            inst.get("repository_selection"),
            int(bool(inst.get("suspended_at"))),
            orjson.dumps(inst.get("permissions") or {}).decode(),
            ts,
            ts,
        ),
    )


def _upsert_repos(conn: sqlite3.Connection, installation_id: int, repos: list[dict[str, Any]], enabled: bool) -> None:
    ts = now()
    for repo in repos:
        owner, _, name = repo["full_name"].partition("/")
        conn.execute(
            "INSERT INTO repositories (id, installation_id, owner, name, full_name, default_branch, private, enabled,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " installation_id = excluded.installation_id, owner = excluded.owner, name = excluded.name,"
            " full_name = excluded.full_name, default_branch = COALESCE(excluded.default_branch, default_branch),"
            " private = excluded.private, enabled = excluded.enabled, updated_at = excluded.updated_at",
            (repo["id"], installation_id, owner, name, repo["full_name"], repo.get("default_branch"),
             int(bool(repo.get("private"))), int(enabled), ts),
        )


class Tenants:
    """Reads and writes installations and repositories."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, installation_id: int) -> Tenant | None:
        """One installation, or None if never seen."""
        row = await self.store.fetchone(
            "SELECT id, account_login, account_type, suspended, deleted FROM installations WHERE id = ?", (installation_id,)
        )
        if row is None:
            return None
        return Tenant(row["id"], row["account_login"], row["account_type"], bool(row["suspended"]), bool(row["deleted"]))

    async def save_installation(self, inst: dict[str, Any], repos: list[dict[str, Any]] | None = None, *, replace_repos: bool = False) -> None:
        """Create or update an installation and, if given, its repositories (all enabled)."""

        def _save(conn: sqlite3.Connection) -> None:
            _upsert_installation(conn, inst)
            if replace_repos:
                conn.execute("UPDATE repositories SET enabled = 0 WHERE installation_id = ?", (inst["id"],))
            if repos:
                _upsert_repos(conn, inst["id"], repos, True)

        await self.store.run(_save)

    async def set_flags(self, installation_id: int, *, suspended: bool | None = None, deleted: bool | None = None) -> None:
        """Mark an installation suspended or deleted (its repositories are disabled on delete)."""

        def _set(conn: sqlite3.Connection) -> None:
            if suspended is not None:
                conn.execute("UPDATE installations SET suspended = ?, updated_at = ? WHERE id = ?", (int(suspended), now(), installation_id))
            if deleted is not None:
                conn.execute("UPDATE installations SET deleted = ?, updated_at = ? WHERE id = ?", (int(deleted), now(), installation_id))
                if deleted:
                    conn.execute("UPDATE repositories SET enabled = 0 WHERE installation_id = ?", (installation_id,))

        await self.store.run(_set)

    async def set_repos(self, installation_id: int, repos: list[dict[str, Any]], *, enabled: bool) -> None:
        """Enable or disable repositories of an installation."""
        await self.store.run(_upsert_repos, installation_id, repos, enabled)

    async def repo(self, full_name: str) -> RepoRecord | None:
        """A repository by `owner/name` (case-insensitive), or None."""
        row = await self.store.fetchone(
            "SELECT * FROM repositories WHERE full_name = ? COLLATE NOCASE ORDER BY enabled DESC LIMIT 1", (full_name,)
        )
        return _repo(row) if row else None

    async def repos(self, installation_id: int) -> list[RepoRecord]:
        """The enabled repositories of an installation."""
        rows = await self.store.fetchall(
            "SELECT * FROM repositories WHERE installation_id = ? AND enabled = 1 ORDER BY full_name", (installation_id,)
        )
        return [_repo(r) for r in rows]

    async def note_default_branch(self, repo_id: int, branch: str) -> None:
        """Remember a repository's default branch as the latest event tells it."""
        await self.store.execute("UPDATE repositories SET default_branch = ? WHERE id = ?", (branch, repo_id))


def _repo(row: sqlite3.Row) -> RepoRecord:
    return RepoRecord(row["id"], row["installation_id"], row["owner"], row["name"], row["full_name"],
                      row["default_branch"], bool(row["private"]), bool(row["enabled"]))
