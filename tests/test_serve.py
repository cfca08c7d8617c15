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
