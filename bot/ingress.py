"""GitHub webhook ingress: verify, deduplicate, record durably, answer in milliseconds.

The order of checks is the contract: size, signature (over the raw body, before
anything is parsed), event header, JSON object, duplicate delivery, then the
delivery and its job are committed in one transaction and the answer is 202.
Commits are grouped: requests arriving while a commit runs share the next one,
so the store sees one fsync per batch instead of one per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import sqlite3
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from bot.events import EVENT_MODELS
from bot.metrics import Metrics
from bot.queue import JobQueue
from bot.routing import Router
from bot.slim import MissingField, NotAnObject, SlimParser, compile_extractor, plain, spec_of
from bot.store import Store, now

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
DELIVERY_KEY = "delivery:"  # a webhook job's key: the delivery id it was made from
MAX_BATCH = 500  # deliveries per commit (SQLite allows 32,766 parameters in one statement)


class SignatureChecker:
    """HMAC-SHA256 with the key's inner and outer pads hashed once, not per request (RFC 2104)."""

    def __init__(self, secret: bytes) -> None:
        key = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def valid(self, body: bytes, header: str | None) -> bool:
        """True when `header` is `sha256=<hex>` of the body's HMAC (compared in constant time)."""
        if not header or not header.startswith("sha256="):
            return False
        inner = self._inner.copy()
        inner.update(body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return hmac.compare_digest(outer.hexdigest(), header[7:].strip())


def group_for(slim: dict[str, Any]) -> str | None:
    """Jobs about one repository (or installation) run in arrival order."""
    repo = slim.get("repository")
    if isinstance(repo, dict) and isinstance(repo.get("full_name"), str):
        return "repo:" + repo["full_name"].lower()
    installation = slim.get("installation")
    if isinstance(installation, dict) and installation.get("id") is not None:
        return f"installation:{installation['id']}"
    return None


class Accepted(NamedTuple):
    """A verified delivery, ready to be recorded (a tuple: made once per request, cheaply)."""

    delivery_id: str
    event: str
    action: str | None
    group_key: str | None
    payload: bytes


def _record_batch(conn: sqlite3.Connection, batch: list[Accepted]) -> list[bool]:
    """Record each new delivery as its job (keyed by the delivery id); per item, True if it was new.

    One lookup and one `executemany` per batch: per-statement overhead was the largest cost left
    on the request path. The job's key is the delivery record (see the `deliveries` view).
    """
    keys = [DELIVERY_KEY + item.delivery_id for item in batch]
    known = {row[0] for row in conn.execute(f"SELECT key FROM jobs WHERE key IN ({','.join('?' * len(keys))})", keys)}
    fresh: list[bool] = []
    rows = []
    ts = now()
    for item, key in zip(batch, keys, strict=True):
        is_new = key not in known
        known.add(key)  # the same delivery twice in one batch: the second is a duplicate
        fresh.append(is_new)
        if is_new:
            rows.append((key, item.group_key, item.payload, ts, ts))
    conn.executemany(
        "INSERT INTO jobs (kind, key, group_key, payload, not_before, created_at, updated_at)"
        " VALUES ('webhook', ?, ?, ?, 0, ?, ?)",
        rows,
    )
    return fresh


class GroupCommitter:
    """Batches delivery records into shared transactions.

    The batch is committed on the event loop's own thread through a connection of its own: in
    WAL mode with synchronous=NORMAL a commit is a few microseconds of work, cheaper than a hand-off
    to the store thread. When the store thread holds the write lock longer than `LOOP_LOCK_WAIT`,
    the batch goes through the store thread instead, so the loop never waits on a long writer.
    """

    LOOP_LOCK_WAIT_MS = 20

    def __init__(self, store: Store, queue: JobQueue) -> None:
        self.store = store
        self.queue = queue
        self._pending: list[tuple[Accepted, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task | None = None
        self._conn: sqlite3.Connection | None = None

    async def submit(self, item: Accepted) -> bool:
        """Record a delivery and its job durably; True if new, False if a duplicate."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await fut

    def close(self) -> None:
        """Close the loop-side connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _commit_here(self, items: list[Accepted]) -> list[bool] | None:
        """Commit on this thread; None when the write lock is busy (the caller uses the store thread)."""
        if self._conn is None:
            self._conn = self.store.connect(busy_timeout_ms=self.LOOP_LOCK_WAIT_MS)
            if self._conn is None:
                return None
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return None
        try:
            results = _record_batch(self._conn, items)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return results

    async def _flush(self) -> None:
        while self._pending:
            # Let requests already read in this loop iteration join the batch.
            await asyncio.sleep(0)
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            items = [item for item, _ in batch]
            try:
                results = self._commit_here(items)
                if results is None:
                    results = await self.store.run(_record_batch, items)
            except Exception as exc:  # noqa: BLE001 - every waiter must get an answer
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), fresh in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(fresh)
            if any(results):
                self.queue.notify()


def _json(status: int, body: dict) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers={"Content-Type": "application/json"})


def _error(status: int, message: str) -> web.Response:
    return _json(status, {"error": message})


class WebhookIngress:
    """The `POST /github/webhooks` handler."""

    def __init__(self, secret: bytes, router: Router, committer: GroupCommitter, metrics: Metrics, max_bytes: int) -> None:
        self._signature = SignatureChecker(secret)
        self.router = router
        self.committer = committer
        self.metrics = metrics
        self.max_bytes = max_bytes
        self._parser = SlimParser()
        self._extractors = {event: compile_extractor(spec_of(model)) for event, model in EVENT_MODELS.items()}
        self._actionless = frozenset(event for event, model in EVENT_MODELS.items() if "action" not in model.model_fields)

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one webhook delivery."""
        event = request.headers.get("X-GitHub-Event")
        outcome, response = await self._handle(request, event)
        # The header is the sender's to choose: only known events get a label of their own.
        self.metrics.webhooks.inc(event if event in EVENT_MODELS else "other", outcome)
        return response

    async def _handle(self, request: web.Request, event: str | None) -> tuple[str, web.Response]:
        if request.content_length is not None and request.content_length > self.max_bytes:
            return "too_large", _error(413, f"body over {self.max_bytes} bytes")
        try:
            # The application's client_max_size is max_bytes: read() refuses more.
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return "too_large", _error(413, f"body over {self.max_bytes} bytes")
        except Exception:  # noqa: BLE001 - a broken upload is the client's problem
            return "bad_body", _error(400, "could not read the request body")
        if not self._signature.valid(body, request.headers.get(SIGNATURE_HEADER)):
            return "bad_signature", _error(401, f"missing or invalid {SIGNATURE_HEADER}")
        if not event:
            return "no_event", _error(400, "missing X-GitHub-Event header")
        delivery = request.headers.get("X-GitHub-Delivery", "").strip()
        outcome, action, slim, group = self._parse(event, body)
        if outcome == "bad_json":
            return outcome, _error(400, slim)
        if outcome == "ping":
            return outcome, _json(200, {"ok": True, "zen": slim})
        if outcome == "ignored":
            return outcome, _json(200, {"ignored": f"{event}.{action}" if action else event})
        if not delivery or len(delivery) > 100:
            return "no_delivery", _error(400, "missing or invalid X-GitHub-Delivery header")
        if outcome == "bad_payload":
            return outcome, _error(400, f"{event} payload lacks {slim}")
        payload = b"".join((
            b'{"event":', orjson.dumps(event), b',"action":', orjson.dumps(action), b',"delivery":', orjson.dumps(delivery),
            b',"data":', slim, b"}",
        ))
        try:
            fresh = await self.committer.submit(Accepted(delivery, event, action, group, payload))
        except Exception:  # noqa: BLE001
            log.exception("could not record delivery %s", delivery)
            return "store_error", _error(503, "could not record the delivery; GitHub may redeliver it")
        if not fresh:
            return "duplicate", _json(200, {"duplicate": delivery})
        return "accepted", _json(202, {"accepted": delivery})

    def _parse(self, event: str, body: bytes) -> tuple[str, str | None, Any, str | None]:
        """(outcome, action, the slim fields as JSON or a message, group key).

        Nothing of the simdjson document outlives this call: the parser is reused.
        """
        try:
            doc = self._parser.top_level(body)
        except NotAnObject as exc:
            return "bad_json", None, str(exc), None
        if event == "ping":
            zen = doc.get("zen")
            return "ping", None, zen if isinstance(zen, str) else None, None
        # A missing key costs simdjson an exception inside: look only where the event has one.
        action = doc.get("action") if event not in self._actionless else None
        action = action if isinstance(action, str) else None
        extractor = self._extractors.get(event)
        if extractor is None or not self.router.handles(event, action):
            return "ignored", action, None, None
        try:
            slim = self._parser.extract(doc, extractor)
        except MissingField as exc:
            return "bad_payload", action, exc.path, None
        return "accepted", action, orjson.dumps(slim, default=plain), group_for(slim)
