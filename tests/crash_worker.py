"""A worker process for the crash test: `python -m tests.crash_worker MARKER hang|finish`.

Settings come from the environment. The push handler is the real one, wrapped:
it notes each start in MARKER, and in `hang` mode blocks after doing its work,
so the test can kill the process in the middle of the job.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.app import build_services
from bot.queue import WorkerPool
from bot.routing import Router
from bot.settings import Settings
from handlers import push


async def main(marker: Path, mode: str) -> None:
    router = Router()

    @router.register("push")
    async def push_then_maybe_hang(event, ctx) -> None:
        with marker.open("a") as fh:
            fh.write("started\n")
        await push.push_to_default_branch(event, ctx)
        if mode == "hang":
            with marker.open("a") as fh:
                fh.write("hanging\n")
            await asyncio.sleep(3600)

    services = await build_services(Settings(_env_file=None), router=router, extensions=[])
    await services.queue.recover()
    pool = WorkerPool(services.queue, {"webhook": services.job_handlers["webhook"]}, size=1, idle_poll=0.05)
    pool.start()
    while await services.store.fetchone("SELECT 1 FROM jobs WHERE kind = 'webhook' AND state != 'done'"):
        await asyncio.sleep(0.05)
    await pool.stop(5)
    await services.store.close()
    await services.http.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
