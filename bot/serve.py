"""`easydeploy serve`: run the service until SIGTERM, then drain."""

from __future__ import annotations

import fcntl
import gc
import sys
from pathlib import Path
from typing import IO

from aiohttp import web

from bot.app import build_services, create_app
from bot.settings import Settings


def tune_gc() -> None:
    """Keep start-up objects out of the collector's way and collect young objects less often.

    Every webhook allocates a few hundred short-lived objects; with the default threshold the
    collector runs every few requests and its pauses showed up as the ingress p99.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def hold_state_lock(settings: Settings) -> IO[str] | None:
    """Take the state store's process lock; None if another `easydeploy serve` holds it.

    The SQLite store belongs to one process: a starting process queues again every job left
    running, which would double the work of a second process still running them.
    """
    path = Path(settings.effective_state_url.removeprefix("sqlite:///").removeprefix("sqlite://") + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def serve(settings: Settings) -> int:
    """Run the HTTP server and the workers; SIGTERM stops intake and drains jobs in flight."""
    lock = hold_state_lock(settings)
    if lock is None:
        print(f"easydeploy: another easydeploy serve uses the state store {settings.effective_state_url};"
              " stop it, or give this one its own EASYDEPLOY_DATA_DIR", file=sys.stderr)
        return 1

    async def make_app() -> web.Application:
        app = create_app(await build_services(settings))
        tune_gc()
        return app

    # run_app turns SIGTERM/SIGINT into a graceful shutdown: the listener closes
    # first, then the app's cleanup drains the workers (up to drain_timeout).
    try:
        web.run_app(make_app(), host=settings.host, port=settings.port, access_log=None,
                    shutdown_timeout=settings.drain_timeout, print=None)
    finally:
        lock.close()
    return 0


