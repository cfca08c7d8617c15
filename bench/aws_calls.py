"""Count the AWS API calls of a first deploy and of a redeploy of an existing app, on the embedded moto.

Run: python bench/aws_calls.py        (target: a redeploy needs at most 15 calls besides polling)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

REGION = "us-east-1"
TARGET_REDEPLOY_CALLS = 15
# Only the emulator makes this call: BotoAwsSteps(emulator=True) records the image that
# CodeBuild would push, since moto's CodeBuild runs nothing.
EMULATOR_ONLY = {"ecr.PutImage"}


def _steps_class():
    from bot.pipeline.aws import BotoAwsSteps

    class CountingSteps(BotoAwsSteps):
        """Marks the calls made while polling build and rollout status."""

        polling = False
        polled: list[str] = []

        async def get_build(self, build_id):
            return await self._poll(super().get_build(build_id))

        async def get_rollout(self, names, task_definition_arn):
            return await self._poll(super().get_rollout(names, task_definition_arn))

        async def _poll(self, coro):
            before = len(self.c.calls)
            try:
                return await coro
            finally:
                self.polled.extend(self.c.calls[before:])
                del self.c.calls[before:]

    return CountingSteps


async def _deploy(steps, deps, repo: Path, sha: str, deploy_id: str) -> tuple[list[str], list[str]]:
    from bot.pipeline import DeployRequest, run_pipeline
    from bot.pipeline.testing import RecordingProgress

    before = len(steps.c.calls)
    steps.polled = []
    req = DeployRequest(deploy_id, 1, "acme", "web", sha, "refs/heads/main", "main", f"file://{repo}")
    result = await run_pipeline(req, deps, RecordingProgress())
    if not result.ok:
        raise SystemExit(f"deploy failed: {result.failure}")
    calls = [c for c in steps.c.calls[before:] if c not in EMULATOR_ONLY]
    return calls, list(steps.polled)


def _show(title: str, calls: list[str], polled: list[str]) -> None:
    print(f"{title}: {len(calls)} calls besides polling (+{len(polled)} polling)")
    for op, n in sorted(Counter(calls).items()):
        print(f"    {n:2d}  {op}")
    if polled:
        print("    polling: " + ", ".join(f"{op} x{n}" for op, n in sorted(Counter(polled).items())))


def main() -> int:
    """Run the benchmark and print the counts; exit 1 if the redeploy misses the target."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bot.pipeline.awsclients import make_clients
    from bot.pipeline.sandbox import provision_sandbox, start_embedded_moto
    from bot.pipeline.testing import FLASK_APP, GIT_TEST_ENV, commit_files, fast_deps

    os.environ.update(GIT_TEST_ENV)
    url, stop = start_embedded_moto()
    try:
        clients = make_clients(REGION, url, static_credentials=("testing", "testing"))
        platform = provision_sandbox(clients, REGION)
        steps = _steps_class()(clients, platform, emulator=True)
        with tempfile.TemporaryDirectory() as tmp:
            repo = Path(tmp) / "upstream"
            sha1 = commit_files(repo, FLASK_APP, "first")
            deps = fast_deps(steps, platform, Path(tmp) / "repos")
            first, first_poll = asyncio.run(_deploy(steps, deps, repo, sha1, "bench-1"))
            sha2 = commit_files(repo, {"app.py": FLASK_APP["app.py"] + "# change\n"}, "second")
            redeploy, redeploy_poll = asyncio.run(_deploy(steps, deps, repo, sha2, "bench-2"))
            same, same_poll = asyncio.run(_deploy(steps, deps, repo, sha2, "bench-3"))
    finally:
        stop()
    _show("first deploy", first, first_poll)
    _show("redeploy of an existing app (new commit)", redeploy, redeploy_poll)
    _show("redeploy of the same commit", same, same_poll)
    ok = len(redeploy) <= TARGET_REDEPLOY_CALLS
    print(f"target: redeploy <= {TARGET_REDEPLOY_CALLS} calls besides polling: {'met' if ok else 'MISSED'} ({len(redeploy)})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
