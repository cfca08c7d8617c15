"""Ingress benchmark: signed ~7.7 KB push webhooks against the real endpoint vs a bare aiohttp handler.

Both servers run in the same run on the same core, the load generator (wrk, 32 connections)
on the other core. Prints requests/s, p50 and p99 for each and the ratio. Target: the real
endpoint (verification, dedupe, durable enqueue) at >= 50 % of the bare handler, p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECRET = "bench-secret"


def largest_push_example() -> bytes:
    """GitHub's largest published push example, compact JSON, with an installation (as an App receives it)."""
    best = max((ROOT / "tests/fixtures/github/webhooks/push").glob("*.json"), key=lambda p: len(json.dumps(json.loads(p.read_text()))))
    payload = json.loads(best.read_text())
    payload.setdefault("installation", {"id": 1, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="})
    return json.dumps(payload, separators=(",", ":")).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def pin(cores: str) -> list[str]:
    return ["taskset", "-c", cores] if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > 1 else []


def run(mode: str, body_file: Path, signature: str, duration: int, connections: int) -> dict[str, float]:
    """Start one server, load it with wrk, return its figures."""
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="bench-ingress-")
    server = subprocess.Popen([*pin("0"), sys.executable, str(HERE / "ingress_server.py"), mode, str(port), data_dir],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        env = {**os.environ, "BENCH_BODY": str(body_file), "BENCH_SIGNATURE": signature}
        # A short warm-up, then the measured run.
        subprocess.run([*pin("1"), "wrk", "-t1", f"-c{connections}", "-d2s", "-s", str(HERE / "ingress.lua"),
                        f"http://127.0.0.1:{port}"], env=env, capture_output=True, check=True)
        out = subprocess.run([*pin("1"), "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", str(HERE / "ingress.lua"),
                              f"http://127.0.0.1:{port}"], env=env, capture_output=True, text=True, check=True).stdout
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    return {k: float(v) for k, v in (pair.split("=") for pair in line.split()[1:])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternate bare/service runs; medians are reported")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("bench/ingress: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    body = largest_push_example()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        fh.write(body)
        body_file = Path(fh.name)
    bares, reals, ratios = [], [], []
    try:
        for _ in range(args.rounds):
            bares.append(run("bare", body_file, signature, args.duration, args.connections))
            reals.append(run("service", body_file, signature, args.duration, args.connections))
            ratios.append(reals[-1]["rps"] / bares[-1]["rps"])
    finally:
        body_file.unlink()
    print(f"payload: {len(body)} bytes, {args.connections} connections, {args.rounds} rounds of {args.duration}s each")
    for name, runs in (("bare handler", bares), ("easydeploy", reals)):
        for r in runs:
            print(f"{name:<13} {r['rps']:9.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  non-2xx {int(r['non2xx'])}")
    ratio = statistics.median(ratios)
    p99 = statistics.median(r["p99_ms"] for r in reals)
    print(f"ratio: {ratio:.1%} of the bare handler, median of {', '.join(f'{x:.1%}' for x in ratios)} (target >= 50%)")
    print(f"easydeploy: {statistics.median(r['rps'] for r in reals):.0f} req/s, p50 {statistics.median(r['p50_ms'] for r in reals):.2f} ms,"
          f" p99 {p99:.2f} ms (target < 20 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
