"""Crash safety: a job in flight when the process dies completes exactly once after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bot.app import build_services
from tests.conftest import APP_ID, FAST_RETRY, INSTALLATION_ID, WEBHOOK_SECRET, load_webhook

ROOT = Path(__file__).resolve().parent.parent


def _push_payload() -> dict:
    payload = load_webhook("push")
    payload["installation"] = {"id": INSTALLATION_ID}
    payload["ref"] = "refs/heads/" + payload["repository"]["default_branch"]
    payload["deleted"] = False
    return payload


def _worker(marker: Path, mode: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.crash_worker", str(marker), mode], cwd=ROOT, env=env)


async def test_job_killed_mid_flight_completes_exactly_once_in_a_new_process(start_service, make_settings, tmp_path, app_private_key):
    # 1. The webhook is accepted by a service with no workers, then that service goes away.
    svc = await start_service(start_workers=False)
    payload = _push_payload()
    await svc.services.tenants.save_installation({"id": INSTALLATION_ID, "account": {"login": "Codertocat"}})
    assert (await svc.webhook("push", payload, delivery="crash-1")).status == 202
    settings = svc.services.settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("EASYDEPLOY_")}
    env.update(
        EASYDEPLOY_DATA_DIR=str(settings.data_dir),
        EASYDEPLOY_GITHUB_APP_ID=str(APP_ID),
        EASYDEPLOY_GITHUB_PRIVATE_KEY=app_private_key,
        EASYDEPLOY_GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET,
        EASYDEPLOY_GITHUB_API_URL="http://127.0.0.1:9",
        PYTHONPATH=str(ROOT),
    )
    marker = tmp_path / "marker"

    # 2. A worker process takes the job, does its work, and is killed before recording the end.
    first = _worker(marker, "hang", env)
    deadline = time.monotonic() + 30
    while "hanging" not in (marker.read_text() if marker.exists() else ""):
        assert time.monotonic() < deadline and first.poll() is None, "worker never reached the job"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    row = await svc.services.store.fetchone("SELECT state FROM jobs WHERE kind = 'webhook'")
    assert row["state"] == "running"

    # 3. A new process on the same store picks the job up again and finishes it.
    second = _worker(marker, "finish", env)
    assert second.wait(60) == 0
    assert marker.read_text().count("started") == 2  # at least once ...
    assert await svc.count("SELECT COUNT(*) FROM jobs WHERE kind = 'webhook' AND state = 'done'") == 1
    # ... and exactly once in effect: one deploy record, one deploy job.
    assert await svc.count("SELECT COUNT(*) FROM deploys") == 1
    assert await svc.count("SELECT COUNT(*) FROM jobs WHERE kind = 'deploy'") == 1


async def test_sigterm_drains_jobs_in_flight(make_settings):
    import asyncio

    from bot.queue import Job, JobState, WorkerPool

    services = await build_services(make_settings(), github_retry=FAST_RETRY, extensions=[])
    finished: list[int] = []

    async def slow(job: Job) -> None:
        await asyncio.sleep(0.3)
        finished.append(job.id)

    pool = WorkerPool(services.queue, {"slow": slow}, size=2, idle_poll=0.05)
    for i in range(2):
        await services.queue.enqueue("slow", {"n": i})
    pool.start()
    await asyncio.sleep(0.1)
    await pool.stop(drain_timeout=5)
    assert len(finished) == 2
    rows = await services.store.fetchall("SELECT state FROM jobs")
    assert {r["state"] for r in rows} == {JobState.DONE.value}
    await services.store.close()
    await services.http.close()


async def test_drain_timeout_leaves_the_job_for_the_next_start(make_settings):
    import asyncio

    from bot.queue import Job, WorkerPool

    services = await build_services(make_settings(), github_retry=FAST_RETRY, extensions=[])

    async def stuck(job: Job) -> None:
        await asyncio.sleep(60)

    pool = WorkerPool(services.queue, {"stuck": stuck}, size=1, idle_poll=0.05)
    await services.queue.enqueue("stuck", {})
    pool.start()
    await asyncio.sleep(0.1)
    await pool.stop(drain_timeout=0.2)
    assert (await services.store.fetchone("SELECT state FROM jobs"))["state"] == "running"
    assert await services.queue.recover() == 1
    assert (await services.store.fetchone("SELECT state FROM jobs"))["state"] == "queued"
    await services.store.close()
    await services.http.close()
