"""Environment locks: one per repository and environment, with holder, reason and time.

`try_lock` answers like Atlantis' `TryLock`: whether you hold the lock now *and*
who does, so the bot can say who is in the way and why.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bot.store import Store, now

LOCKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS environment_locks (
    owner TEXT NOT NULL COLLATE NOCASE,
    repo TEXT NOT NULL COLLATE NOCASE,
    environment TEXT NOT NULL,
    holder TEXT NOT NULL,
    holder_slack_user TEXT,
    reason TEXT NOT NULL DEFAULT '',
    locked_at REAL NOT NULL,
    PRIMARY KEY (owner, repo, environment)
);
"""

# Triggers by which a lock holder acts in person (and so may deploy through their own lock).
PERSONAL_TRIGGERS = frozenset({"slack", "button"})


@dataclass(frozen=True)
class Lock:
    """Who holds an environment, why, and since when."""

    owner: str
    repo: str
    environment: str
    holder: str  # the holder's GitHub login
    holder_slack_user: str | None
    reason: str
    locked_at: float

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def held_by(self, login: str | None) -> bool:
        """True when `login` (a GitHub login, any case) holds this lock."""
        return login is not None and login.lower() == self.holder.lower()


def lock_holds_deploy(lock: Lock | None, trigger: str, actor: str | None) -> bool:
    """True when a deploy must wait for the lock: always, unless the holder asked in person."""
    if lock is None:
        return False
    return not (str(trigger) in PERSONAL_TRIGGERS and lock.held_by(actor))


def _row_to_lock(row: sqlite3.Row) -> Lock:
    return Lock(row["owner"], row["repo"], row["environment"], row["holder"], row["holder_slack_user"],
                row["reason"], row["locked_at"])


def get_lock_in(conn: sqlite3.Connection, owner: str, repo: str, environment: str) -> Lock | None:
    """The lock on an environment inside a transaction, or None."""
    row = conn.execute(
        "SELECT * FROM environment_locks WHERE owner = ? AND repo = ? AND environment = ?", (owner, repo, environment)
    ).fetchone()
    return _row_to_lock(row) if row else None


def try_lock_in(conn: sqlite3.Connection, owner: str, repo: str, environment: str, holder: str,
                reason: str, holder_slack_user: str | None = None) -> tuple[bool, Lock]:
    """Take the lock unless someone else holds it; return whether we hold it and the lock as it is now."""
    current = get_lock_in(conn, owner, repo, environment)
    if current is not None and not current.held_by(holder):
        return False, current
    if current is not None:
        # The holder locking again keeps the lock and its time; a new reason replaces the old one.
        if reason and reason != current.reason:
            conn.execute("UPDATE environment_locks SET reason = ? WHERE owner = ? AND repo = ? AND environment = ?",
                         (reason, owner, repo, environment))
        return True, get_lock_in(conn, owner, repo, environment) or current
    conn.execute(
        "INSERT INTO environment_locks (owner, repo, environment, holder, holder_slack_user, reason, locked_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (owner, repo, environment, holder, holder_slack_user, reason, now()),
    )
    lock = get_lock_in(conn, owner, repo, environment)
    assert lock is not None
    return True, lock


def unlock_in(conn: sqlite3.Connection, owner: str, repo: str, environment: str) -> Lock | None:
    """Remove the lock; return the one removed, or None if there was none."""
    current = get_lock_in(conn, owner, repo, environment)
    if current is not None:
        conn.execute("DELETE FROM environment_locks WHERE owner = ? AND repo = ? AND environment = ?", (owner, repo, environment))
    return current


class Locks:
    """Async access to environment locks."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def try_lock(self, owner: str, repo: str, environment: str, holder: str, reason: str,
                       *, holder_slack_user: str | None = None) -> tuple[bool, Lock]:
        """Take the lock if it is free or already ours; return (we hold it, the lock as it is now)."""
        return await self.store.run(try_lock_in, owner, repo, environment, holder, reason, holder_slack_user)

    async def unlock(self, owner: str, repo: str, environment: str) -> Lock | None:
        """Release the lock (whoever holds it); return the lock that was removed."""
        return await self.store.run(unlock_in, owner, repo, environment)

    async def get(self, owner: str, repo: str, environment: str) -> Lock | None:
        """The lock on an environment, or None."""
        return await self.store.run(get_lock_in, owner, repo, environment)

    async def for_repo(self, owner: str, repo: str) -> list[Lock]:
        """Every lock of a repository, by environment."""
        rows = await self.store.fetchall(
            "SELECT * FROM environment_locks WHERE owner = ? AND repo = ? ORDER BY environment", (owner, repo)
        )
        return [_row_to_lock(r) for r in rows]
