"""`easydeploy serve`: run the service until SIGTERM, then drain."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.app import build_services, create_app
from bot.settings import Settings


def serve(settings: Settings) -> int:
    """Run the HTTP server and the workers; SIGTERM stops intake and drains jobs in flight."""

    async def make_app() -> web.Application:
        return create_app(await build_services(settings))

    # run_app turns SIGTERM/SIGINT into a graceful shutdown: the listener closes
    # first, then the app's cleanup drains the workers (up to drain_timeout).
    web.run_app(make_app(), host=settings.host, port=settings.port, access_log=None,
                shutdown_timeout=settings.drain_timeout, print=None)
    return 0


