"""A server for bench/ingress.py: `python bench/ingress_server.py bare|service PORT DATA_DIR`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SECRET = "bench-secret"


async def bare_app() -> web.Application:
    """The baseline: read the body, answer 202."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202)

    app = web.Application(client_max_size=25 * 1024 * 1024)
    app.router.add_post("/github/webhooks", handle)
    return app


async def service_app(data_dir: str) -> web.Application:
    """The real endpoint: signature, dedupe, durable enqueue (no workers, so jobs stay queued)."""
    from bot.app import build_services, create_app
    from bot.sandbox import generate_private_key
    from bot.serve import tune_gc
    from bot.settings import Settings

    settings = Settings(_env_file=None, data_dir=Path(data_dir), github_app_id=1, github_private_key=generate_private_key(),
                        github_webhook_secret=SECRET)
    services = await build_services(settings, extensions=[])
    app = create_app(services, start_workers=False)
    tune_gc()  # as `easydeploy serve` does
    return app


def main() -> None:
    mode, port, data_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    loop = asyncio.new_event_loop()
    app = loop.run_until_complete(bare_app() if mode == "bare" else service_app(data_dir))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
