"""Helpers for tests and the sandbox demo: local git repos, a recording progress sink, fast deps."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.pipeline.aws import AwsSteps
from bot.pipeline.model import PipelineDeps, PlatformResources, PollPolicy, Stage

BUILDSPECS_DIR = Path(__file__).resolve().parents[2] / "buildspecs"
GIT_TEST_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Easy Deploy Tests",
    "GIT_AUTHOR_EMAIL": "tests@easydeploy.invalid",
    "GIT_COMMITTER_NAME": "Easy Deploy Tests",
    "GIT_COMMITTER_EMAIL": "tests@easydeploy.invalid",
}
FLASK_APP = {
    "app.py": "from flask import Flask\napp = Flask(__name__)\n\n@app.get('/')\ndef index():\n    return 'hello'\n",
    "requirements.txt": "flask==3.0.3\n",
    ".easydeploy.yml": "port: 8000\nhealth_check_path: /\nenv:\n  GREETING: hello\n",
}


def git(cwd: Path, *args: str) -> str:
    """Run git synchronously with the test identity (tests only)."""
    env = {**os.environ, **GIT_TEST_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def commit_files(repo: Path, files: dict[str, str], message: str = "change", branch: str = "main") -> str:
    """Write files on a branch of a local repo (created if missing), commit, and return the SHA."""
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        git(repo, "init", "--quiet", "--initial-branch", branch)
        # Lets file:// clients fetch any reachable commit by SHA, as GitHub allows.
        git(repo, "config", "uploadpack.allowAnySHA1InWant", "true")
    current = git(repo, "symbolic-ref", "--short", "HEAD")
    if current != branch:
        exists = subprocess.run(["git", "rev-parse", "--verify", "--quiet", branch], cwd=repo, env={**os.environ, **GIT_TEST_ENV}, capture_output=True).returncode == 0
        git(repo, "checkout", "--quiet", *([] if exists else ["-b"]), branch)
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@dataclass
class RecordingProgress:
    """A ProgressSink that keeps every update."""

    updates: list[tuple[Stage, dict[str, dict]]] = field(default_factory=list)

    async def __call__(self, stages: dict[str, dict], changed: Stage) -> None:
        self.updates.append((changed, stages))

    def states(self, stage: Stage) -> list[str]:
        """The successive distinct states a stage went through."""
        seen: list[str] = []
        for _, stages in self.updates:
            state = stages[stage.value]["state"]
            if not seen or seen[-1] != state:
                seen.append(state)
        return seen


async def dummy_token() -> str:
    """An installation token stand-in for the sandbox."""
    return "ghs_sandboxtoken000000000000000000000000"


def fast_deps(aws: AwsSteps, platform: PlatformResources, repos_root: Path, **overrides: Any) -> PipelineDeps:
    """PipelineDeps with millisecond polling, for tests and the sandbox."""
    values: dict[str, Any] = dict(
        aws=aws,
        platform=platform,
        repos_root=repos_root,
        apps_domain="apps.example.test",
        buildspecs_dir=BUILDSPECS_DIR,
        get_token=dummy_token,
        poll=PollPolicy(initial=0.01, maximum=0.02, factor=1.5),
        rollout_timeout=5.0,
        build_timeout=5.0,
    )
    values.update(overrides)
    return PipelineDeps(**values)
