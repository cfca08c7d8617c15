"""The state store: SQLite in WAL mode, one writer thread, small typed helpers.

Everything that must survive a restart lives here: installations, repositories,
accepted webhook deliveries, the job queue and deploy records. Other modules add
their own tables with `add_schema` before `open`.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
CHECKPOINT_INTERVAL = 1.0  # seconds between passive WAL checkpoints

SCHEMA = """
CREATE TABLE IF NOT EXISTS installations (
    id INTEGER PRIMARY KEY,
    account_login TEXT NOT NULL,
    account_type TEXT NOT NULL DEFAULT 'User',
    repository_selection TEXT,
    suspended INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    permissions TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS repositories (
    id INTEGER PRIMARY KEY,
    installation_id INTEGER NOT NULL,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    full_name TEXT NOT NULL,
    default_branch TEXT,
    private INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS repositories_full_name ON repositories (full_name COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS repositories_installation ON repositories (installation_id);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT UNIQUE,
    group_key TEXT,
    payload BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (state, not_before, id);
CREATE INDEX IF NOT EXISTS jobs_group ON jobs (group_key, state);
-- A webhook delivery is recorded as its job, keyed "delivery:<X-GitHub-Delivery>": one row per
-- delivery on the hot path instead of two. This view reads them as the deliveries they are.
CREATE VIEW IF NOT EXISTS deliveries AS
    SELECT substr(key, 10) AS id, json_extract(payload, '$.event') AS event,
           json_extract(payload, '$.action') AS action, created_at AS received_at
    FROM jobs WHERE key LIKE 'delivery:%';
"""


class Store:
    """SQLite state store; every statement runs on one dedicated thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._schemas: list[str] = [SCHEMA]
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: threading.Thread | None = None
        self._closing = threading.Event()

    @classmethod
    def from_url(cls, url: str) -> "Store":
        """Open `sqlite:///path` (the default store)."""
        if url.startswith("sqlite:///"):
            return cls(url.removeprefix("sqlite:///"))
        if url.startswith("sqlite://"):
            return cls(url.removeprefix("sqlite://"))
        raise ValueError(f"unsupported EASYDEPLOY_STATE_URL {url!r}: only sqlite:/// is built in")

    def add_schema(self, sql: str) -> None:
        """Register extra `CREATE … IF NOT EXISTS` statements; call before `open`."""
        self._schemas.append(sql)

    @property
    def is_open(self) -> bool:
        """True between `open` and `close`."""
        return self._conn is not None

    async def open(self) -> None:
        """Create the file and tables and switch to WAL."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open_sync)

    def _open_sync(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a process crash; FULL also survives power loss.
        # Group commit (see ingress) keeps FULL affordable.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        for sql in self._schemas:
            conn.executescript(sql)
        self._conn = conn
        if self.path != ":memory:":
            # Checkpoints copy the WAL into the database file and fsync it: tens of ms. Done
            # inline they stall every commit behind them, so a helper thread runs them passively
            # (beside the writer, never blocking it) instead.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="store-checkpoint", daemon=True)
            self._checkpointer.start()

    def connect(self, *, busy_timeout_ms: int = 5000) -> sqlite3.Connection | None:
        """A further connection for the calling thread (None for an in-memory store, which has one only)."""
        if self.path == ":memory:" or self._conn is None:
            return None
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=1000")
        try:
            while not self._closing.wait(CHECKPOINT_INTERVAL):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:  # busy: the next round catches up
                    continue
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        finally:
            conn.close()

    async def close(self) -> None:
        """Close the connection and the writer thread."""
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        self._closing.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join, 5)
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=True)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(conn, *args, **kwargs)` in one transaction on the store thread and return its result."""
        if self._executor is None:
            raise RuntimeError("store is not open")
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, fn, args)

    def _transaction(self, fn: Callable[..., T], args: tuple) -> T:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, *args)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def fetchall(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Run a read query and return its rows."""
        return await self.run(lambda conn: conn.execute(sql, params).fetchall())

    async def fetchone(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        """Run a read query and return its first row, or None."""
        return await self.run(lambda conn: conn.execute(sql, params).fetchone())

    async def execute(self, sql: str, params: tuple | dict = ()) -> int:
        """Run one write statement; return the number of changed rows."""
        return await self.run(lambda conn: conn.execute(sql, params).rowcount)

    async def ping(self) -> bool:
        """True when the store answers a trivial query."""
        try:
            row = await asyncio.wait_for(self.fetchone("SELECT 1"), timeout=2)
        except Exception:  # noqa: BLE001 - health check reports, never raises
            return False
        return row is not None


def now() -> float:
    """Wall-clock seconds, the store's time unit."""
    return time.time()
