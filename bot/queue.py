"""The durable job queue and the worker pool that drains it.

Jobs live in the store, so a job in flight when the process dies is queued
again when the next process opens the same store (at least once: handlers are
idempotent by key). Jobs that share a `group_key` run one at a time, in order:
that is how one deploy at a time per app and environment is kept.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import orjson

from bot.store import Store, now

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Job:
    """One unit of work, as claimed by a worker."""

    id: int
    kind: str
    key: str | None
    group_key: str | None
    payload: dict
    attempts: int


class RetryLater(Exception):
    """Raised by a handler to run the job again after `delay` seconds."""

    def __init__(self, reason: str, delay: float = 5.0) -> None:
        super().__init__(reason)
        self.delay = delay


def enqueue_in(
    conn: sqlite3.Connection,
    kind: str,
    payload: dict | bytes,
    *,
    key: str | None = None,
    group_key: str | None = None,
    not_before: float = 0.0,
) -> int | None:
    """Queue a job inside the caller's transaction; return its id, or None if `key` was queued before."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    ts = now()
    cur = conn.execute(
        "INSERT OR IGNORE INTO jobs (kind, key, group_key, payload, not_before, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (kind, key, group_key, body, not_before, ts, ts),
    )
    return cur.lastrowid if cur.rowcount else None


class JobQueue:
    """The in-process durable queue over the SQLite store (SQS takes this place at scale)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._wakeup = asyncio.Event()

    def notify(self) -> None:
        """Wake idle workers: new work was committed."""
        self._wakeup.set()

    async def wait_for_work(self, timeout: float) -> None:
        """Sleep until `notify` or `timeout`."""
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            pass
        self._wakeup.clear()

    async def enqueue(self, kind: str, payload: dict, *, key: str | None = None, group_key: str | None = None) -> int | None:
        """Queue a job in its own transaction."""
        job_id = await self.store.run(enqueue_in, kind, payload, key=key, group_key=group_key)
        self.notify()
        return job_id

    async def recover(self) -> int:
        """Queue again every job left running by a process that died; return how many."""
        count = await self.store.execute(
            "UPDATE jobs SET state = 'queued', updated_at = ? WHERE state = 'running'", (now(),)
        )
        if count:
            log.warning("requeued %d job(s) left running by a previous process", count)
        return count

    async def claim(self, kinds: frozenset[str] | None = None) -> Job | None:
        """Take the oldest runnable job (of one of `kinds`, if given) whose group has nothing running."""
        kind_filter = f" AND kind IN ({','.join('?' * len(kinds))})" if kinds else ""

        def _claim(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute(
                "SELECT id, kind, key, group_key, payload, attempts FROM jobs j"
                " WHERE state = 'queued' AND not_before <= ?" + kind_filter +
                " AND (group_key IS NULL OR NOT EXISTS ("
                "   SELECT 1 FROM jobs r WHERE r.group_key = j.group_key AND r.state = 'running'))"
                " ORDER BY id LIMIT 1",
                (now(), *sorted(kinds or ())),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (now(), row["id"]),
            )
            return Job(row["id"], row["kind"], row["key"], row["group_key"], orjson.loads(row["payload"]), row["attempts"] + 1)

        return await self.store.run(_claim)

    async def finish(self, job: Job, state: JobState, error: str | None = None) -> None:
        """Record a job's end."""
        await self.store.execute(
            "UPDATE jobs SET state = ?, last_error = ?, updated_at = ? WHERE id = ?",
            (state.value, error, now(), job.id),
        )
        self.notify()  # its group may have more

    async def retry(self, job: Job, delay: float, error: str) -> None:
        """Queue a job again after `delay` seconds."""
        await self.store.execute(
            "UPDATE jobs SET state = 'queued', not_before = ?, last_error = ?, updated_at = ? WHERE id = ?",
            (now() + delay, error, now(), job.id),
        )

    async def depth(self) -> int:
        """Jobs waiting or running."""
        row = await self.store.fetchone("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')")
        return int(row[0]) if row else 0


JobHandler = Callable[[Job], Awaitable[None]]


class WorkerPool:
    """N workers claiming jobs and running the handler registered for their kind."""

    def __init__(
        self,
        queue: JobQueue,
        handlers: dict[str, JobHandler],
        *,
        size: int = 4,
        idle_poll: float = 1.0,
        on_job_done: Callable[[Job, str, float], None] | None = None,
        kinds: frozenset[str] | None = None,
    ) -> None:
        self.queue = queue
        self.handlers = handlers
        self.kinds = kinds  # only these kinds of job (all when None)
        self.size = size
        self.idle_poll = idle_poll
        self.on_job_done = on_job_done
        self._tasks: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self._running: set[asyncio.Task] = set()

    @property
    def alive(self) -> bool:
        """True while every worker task runs."""
        return bool(self._tasks) and not self._stopping.is_set() and all(not t.done() for t in self._tasks)

    def start(self) -> None:
        """Start the workers."""
        self._tasks = [asyncio.create_task(self._loop(i), name=f"worker-{i}") for i in range(self.size)]

    async def stop(self, drain_timeout: float) -> None:
        """Stop taking work; let jobs in flight finish for up to `drain_timeout` seconds."""
        self._stopping.set()
        self.queue.notify()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=drain_timeout)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("drain timeout: %d job(s) cut short; they run again at the next start", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []

    async def _loop(self, index: int) -> None:
        while not self._stopping.is_set():
            try:
                job = await self.queue.claim(self.kinds)
            except Exception:  # noqa: BLE001 - a store hiccup must not kill the worker
                log.exception("worker %d could not claim a job", index)
                await asyncio.sleep(self.idle_poll)
                continue
            if job is None:
                await self.queue.wait_for_work(self.idle_poll)
                continue
            await self.run_one(job)

    async def run_one(self, job: Job) -> None:
        """Run one claimed job to its recorded end."""
        handler = self.handlers.get(job.kind)
        started = time.perf_counter()
        outcome = "done"
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            await handler(job)
        except RetryLater as exc:
            outcome = "retry"
            await self.queue.retry(job, exc.delay, str(exc))
        except asyncio.CancelledError:
            # Drain timeout: leave it `running`; the next start queues it again.
            outcome = "interrupted"
            raise
        except Exception as exc:  # noqa: BLE001
            log.exception("job %s (%s) failed on attempt %d", job.id, job.kind, job.attempts)
            if job.attempts < MAX_ATTEMPTS:
                outcome = "retry"
                await self.queue.retry(job, min(2 ** job.attempts, 60), repr(exc))
            else:
                outcome = "failed"
                await self.queue.finish(job, JobState.FAILED, repr(exc))
        else:
            await self.queue.finish(job, JobState.DONE)
        finally:
            if self.on_job_done is not None:
                self.on_job_done(job, outcome, time.perf_counter() - started)


class WorkerGroup:
    """Pools side by side, so long jobs (deploys) never hold up short ones (webhooks, reports)."""

    def __init__(self, *pools: WorkerPool) -> None:
        self.pools = pools

    @property
    def alive(self) -> bool:
        """True while every pool's workers run."""
        return all(pool.alive for pool in self.pools)

    def start(self) -> None:
        """Start every pool."""
        for pool in self.pools:
            pool.start()

    async def stop(self, drain_timeout: float) -> None:
        """Stop every pool, draining them together."""
        await asyncio.gather(*(pool.stop(drain_timeout) for pool in self.pools))
