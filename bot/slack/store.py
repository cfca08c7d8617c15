"""Slack's tables: linked identities, channel subscriptions, live messages and used OAuth states."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bot.store import Store, now

SLACK_SCHEMA = """
CREATE TABLE IF NOT EXISTS slack_links (
    team_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    github_login TEXT NOT NULL,
    linked_at REAL NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE TABLE IF NOT EXISTS slack_subscriptions (
    team_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    owner TEXT NOT NULL COLLATE NOCASE,
    repo TEXT NOT NULL COLLATE NOCASE,
    created_by TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (team_id, channel_id, owner, repo)
);
CREATE INDEX IF NOT EXISTS slack_subscriptions_repo ON slack_subscriptions (owner, repo);
CREATE TABLE IF NOT EXISTS slack_messages (
    deploy_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    posted_at REAL NOT NULL,
    PRIMARY KEY (deploy_id, team_id, channel_id)
);
CREATE TABLE IF NOT EXISTS slack_oauth_states (
    nonce TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Channel:
    """A Slack channel in a workspace."""

    team_id: str
    channel_id: str


@dataclass(frozen=True)
class PostedMessage:
    """Where a deploy's live message is, so it can be updated in place."""

    channel: Channel
    ts: str


def _use_nonce_in(conn: sqlite3.Connection, nonce: str, expires_at: float) -> bool:
    conn.execute("DELETE FROM slack_oauth_states WHERE expires_at < ?", (now(),))
    cur = conn.execute("INSERT OR IGNORE INTO slack_oauth_states (nonce, expires_at) VALUES (?, ?)", (nonce, expires_at))
    return cur.rowcount == 1


class SlackStore:
    """Async access to Slack's tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- identities -----------------------------------------------------------

    async def link(self, team_id: str, user_id: str, github_login: str) -> None:
        """Remember that this Slack user is this GitHub user (replacing an older link)."""
        await self.store.execute(
            "INSERT INTO slack_links (team_id, user_id, github_login, linked_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (team_id, user_id) DO UPDATE SET github_login = excluded.github_login, linked_at = excluded.linked_at",
            (team_id, user_id, github_login, now()),
        )

    async def linked_login(self, team_id: str, user_id: str) -> str | None:
        """The GitHub login linked to a Slack user, or None."""
        row = await self.store.fetchone("SELECT github_login FROM slack_links WHERE team_id = ? AND user_id = ?", (team_id, user_id))
        return row["github_login"] if row else None

    async def unlink(self, team_id: str, user_id: str) -> str | None:
        """Forget a Slack user's link; return the login it pointed to."""
        login = await self.linked_login(team_id, user_id)
        await self.store.execute("DELETE FROM slack_links WHERE team_id = ? AND user_id = ?", (team_id, user_id))
        return login

    async def use_oauth_state(self, nonce: str, expires_at: float) -> bool:
        """Mark an OAuth state as used; False if it was used before (a replay)."""
        return await self.store.run(_use_nonce_in, nonce, expires_at)

    # -- subscriptions --------------------------------------------------------

    async def subscribe(self, channel: Channel, owner: str, repo: str, created_by: str | None = None) -> bool:
        """Post this repository's deploys in the channel; False if it already was."""
        changed = await self.store.execute(
            "INSERT OR IGNORE INTO slack_subscriptions (team_id, channel_id, owner, repo, created_by, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (channel.team_id, channel.channel_id, owner, repo, created_by, now()),
        )
        return changed == 1

    async def unsubscribe(self, channel: Channel, owner: str, repo: str) -> bool:
        """Stop posting this repository's deploys in the channel; False if it was not subscribed."""
        changed = await self.store.execute(
            "DELETE FROM slack_subscriptions WHERE team_id = ? AND channel_id = ? AND owner = ? AND repo = ?",
            (channel.team_id, channel.channel_id, owner, repo),
        )
        return changed > 0

    async def subscribers(self, owner: str, repo: str) -> list[Channel]:
        """The channels subscribed to a repository."""
        rows = await self.store.fetchall(
            "SELECT team_id, channel_id FROM slack_subscriptions WHERE owner = ? AND repo = ? ORDER BY created_at", (owner, repo)
        )
        return [Channel(r["team_id"], r["channel_id"]) for r in rows]

    # -- live messages --------------------------------------------------------

    async def messages(self, deploy_id: str) -> list[PostedMessage]:
        """Where a deploy's live messages were posted."""
        rows = await self.store.fetchall(
            "SELECT team_id, channel_id, ts FROM slack_messages WHERE deploy_id = ? ORDER BY posted_at", (deploy_id,)
        )
        return [PostedMessage(Channel(r["team_id"], r["channel_id"]), r["ts"]) for r in rows]

    async def save_message(self, deploy_id: str, channel: Channel, ts: str) -> None:
        """Remember a deploy's live message in a channel."""
        await self.store.execute(
            "INSERT OR REPLACE INTO slack_messages (deploy_id, team_id, channel_id, ts, posted_at) VALUES (?, ?, ?, ?, ?)",
            (deploy_id, channel.team_id, channel.channel_id, ts, now()),
        )
