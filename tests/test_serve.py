"""`easydeploy serve` as an operator runs it: up on the sandbox with no account, down cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_starts_on_the_sandbox_and_drains_on_sigterm(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EASYDEPLOY_", "AWS_"))}
    env.update(EASYDEPLOY_PORT=str(port), EASYDEPLOY_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                    health = (resp.status, json.loads(resp.read()))
                    break
            except OSError:
                time.sleep(0.2)
        assert health is not None, proc.stderr.read() if proc.poll() is not None else "no answer"
        assert health[0] == 200 and health[1]["mode"] == "sandbox" and health[1]["status"] == "ok"
        # A second service on the same state store refuses to start, and says why.
        second = subprocess.run([sys.executable, "-m", "bot", "serve"], cwd=tmp_path,
                                env={**env, "EASYDEPLOY_PORT": str(free_port())}, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "another easydeploy serve uses the state store" in second.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    logs = proc.stderr.read()
    assert "mode=sandbox" in logs and "signature verification enforced" in logs
    # The sandbox made its own App key and webhook secret, private to the operator.
    secret = tmp_path / "data" / "sandbox" / "webhook-secret"
    assert secret.exists() and (secret.stat().st_mode & 0o777) == 0o600
    assert secret.read_text().strip() not in logs


@pytest.mark.parametrize("kill_when", ["queued", "in_progress"])
async def test_killed_mid_deploy_the_next_process_finishes_it_once(tmp_path, github, app_private_key, moto_endpoint, kill_when):
    """SIGKILL once the check run shows `kill_when`; the restarted service ends the deploy, with no duplicates."""
    import asyncio

    import orjson

    from bot.pipeline.testing import FLASK_APP, commit_files
    from tests.conftest import APP_ID, INSTALLATION_ID, WEBHOOK_SECRET, webhook_headers
    from tests.test_deploy_e2e import push_payload

    owner, repo = "crash-test", "web"
    source = tmp_path / "upstream" / owner / repo
    sha = commit_files(source, FLASK_APP)
    github.add_installation(INSTALLATION_ID, owner, [{"id": 5, "name": repo, "full_name": f"{owner}/{repo}",
                                                      "owner": {"login": owner}, "default_branch": "main"}])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EASYDEPLOY_", "AWS_"))}
    env.update(
        PYTHONPATH=str(ROOT), EASYDEPLOY_PORT=str(port), EASYDEPLOY_DATA_DIR=str(tmp_path / "data"),
        EASYDEPLOY_REPOS_ROOT=str(tmp_path / "repos"), EASYDEPLOY_GITHUB_APP_ID=str(APP_ID),
        EASYDEPLOY_GITHUB_PRIVATE_KEY=app_private_key, EASYDEPLOY_GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET,
        EASYDEPLOY_GITHUB_API_URL=github.url, EASYDEPLOY_GITHUB_WEB_URL=github.url,
        AWS_ENDPOINT_URL=moto_endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
    )

    async def start() -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return proc
            except OSError:
                await asyncio.sleep(0.1)
        proc.kill()
        raise AssertionError("service did not start")

    first = await start()
    body = orjson.dumps(push_payload(owner, repo, sha, f"file://{source}"))
    request = urllib.request.Request(f"http://127.0.0.1:{port}/github/webhooks", data=body,
                                     headers=webhook_headers("push", body, delivery="crash-deploy"))
    assert (await asyncio.to_thread(urllib.request.urlopen, request, None, 5)).status == 202
    for _ in range(1000):
        if any(r.get("status") == kill_when for r in github.check_runs.values()):
            break
        await asyncio.sleep(0.005)
    first.kill()
    first.wait(10)

    second = await start()
    try:
        for _ in range(600):
            runs = list(github.check_runs.values())
            if runs and runs[0].get("status") == "completed":
                break
            await asyncio.sleep(0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert [(r["name"], r["status"], r["conclusion"]) for r in github.check_runs.values()] == [
        ("Easy Deploy", "completed", "success")
    ]
    assert len(github.deployments) == 1
    [statuses] = github.deployment_statuses.values()
    assert statuses[-1]["state"] == "success"
