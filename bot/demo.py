"""`easydeploy demo`: deploy a sample app end to end on the sandbox, through the real HTTP endpoint.

It starts the service (embedded AWS emulator, local GitHub stand-in), makes a
small Flask app in a local git repository, sends a signed `installation` and a
signed `push` webhook to the service's own port, prints each stage as it
happens, then what GitHub was told, and the app's URL.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import orjson
from pydantic import SecretStr

from bot.app import build_services, create_app
from bot.deploys import Deploy
from bot.ingress import SIGNATURE_HEADER
from bot.sandbox import sandbox_github_credentials, serve_local
from bot.sandbox.github_standin import GitHubStandIn
from bot.sandbox.slack_standin import SlackStandIn
from bot.settings import Settings
from bot.slack.store import Channel

DEMO_OWNER, DEMO_REPO, DEMO_INSTALLATION, DEMO_CHANNEL = "octo-demo", "hello-flask", 1, "C0DEPLOYS"
SAMPLE_APP = {
    "app.py": (
        "from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.get('/')\ndef index():\n"
        "    return 'Hello from Easy Deploy!'\n"
    ),
    "requirements.txt": "flask==3.0.3\ngunicorn==22.0.0\n",
    ".easydeploy.yml": "port: 8000\nhealth_check_path: /\nmin_instances: 1\nmax_instances: 2\n",
}
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Easy Deploy Demo", "GIT_AUTHOR_EMAIL": "demo@easydeploy.invalid",
    "GIT_COMMITTER_NAME": "Easy Deploy Demo", "GIT_COMMITTER_EMAIL": "demo@easydeploy.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def make_sample_repo(folder: Path) -> str:
    """A local git repository holding the sample app; returns the commit SHA."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, text in SAMPLE_APP.items():
        (folder / name).write_text(text)
    env = {**os.environ, **GIT_IDENTITY, "GIT_CONFIG_GLOBAL": os.devnull}

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, env=env, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "--quiet", "--initial-branch", "main")
    git("config", "uploadpack.allowAnySHA1InWant", "true")  # GitHub serves any reachable SHA too
    git("add", "-A")
    git("commit", "--quiet", "-m", "Sample app")
    return git("rev-parse", "HEAD")


def repository_json(clone_url: str) -> dict[str, Any]:
    """The repository object as GitHub puts it in webhooks."""
    return {
        "id": 4242001, "node_id": "R_demo", "name": DEMO_REPO, "full_name": f"{DEMO_OWNER}/{DEMO_REPO}", "private": False,
        "owner": {"login": DEMO_OWNER, "id": 4242, "type": "Organization"},
        "html_url": f"https://github.com/{DEMO_OWNER}/{DEMO_REPO}", "fork": False, "clone_url": clone_url,
        "default_branch": "main", "master_branch": "main",
    }


def installation_payload(clone_url: str) -> dict[str, Any]:
    """installation.created, as GitHub sends it."""
    repo = repository_json(clone_url)
    return {
        "action": "created",
        "installation": {"id": DEMO_INSTALLATION, "account": repo["owner"], "repository_selection": "selected",
                         "target_type": "Organization", "permissions": {"checks": "write", "contents": "read"},
                         "events": ["push", "pull_request"], "suspended_at": None},
        "repositories": [{k: repo[k] for k in ("id", "node_id", "name", "full_name", "private")}],
        "sender": {"login": "octocat", "id": 1, "type": "User"},
    }


def push_payload(sha: str, clone_url: str) -> dict[str, Any]:
    """push to the default branch, as GitHub sends it."""
    return {
        "ref": "refs/heads/main", "before": "0" * 40, "after": sha, "created": True, "deleted": False, "forced": False,
        "base_ref": None, "compare": f"https://github.com/{DEMO_OWNER}/{DEMO_REPO}/commit/{sha[:12]}",
        "commits": [{"id": sha, "message": "Sample app", "distinct": True}],
        "head_commit": {"id": sha, "message": "Sample app", "timestamp": "2026-12-04T00:00:00Z"},
        "repository": repository_json(clone_url), "pusher": {"name": "octocat", "email": "octocat@example.com"},
        "sender": {"login": "octocat", "id": 1, "type": "User"}, "installation": {"id": DEMO_INSTALLATION},
    }


class StagePrinter:
    """A reporter that prints each stage change of a deploy as it happens."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.seen: set[tuple[str, str, str]] = set()
        self.finished: dict[str, Deploy] = {}
        self.started = time.monotonic()

    async def deploy_changed(self, deploy: Deploy) -> None:
        """Print what is new since the last call."""
        events = [("deploy", str(deploy.state), "")]
        events += [(name, s.get("state", ""), s.get("message", "")) for name, s in deploy.stages.items()]
        for key in events:
            if key in self.seen or key[1] in ("", "pending"):
                continue
            self.seen.add(key)
            elapsed = time.monotonic() - self.started
            name, state, message = key
            self.out.write(f"[{elapsed:5.1f}s] {name:<9} {state:<10} {message}\n".rstrip() + "\n")
            self.out.flush()
        if deploy.state.finished:
            self.finished[deploy.id] = deploy


async def run_demo(settings: Settings, *, timeout: float = 120.0, out: TextIO = sys.stdout) -> int:
    """Run the demo; 0 when the sample app deployed."""
    demo_dir = (settings.data_dir / "demo").resolve()
    if demo_dir.exists():
        shutil.rmtree(demo_dir)
    creds = sandbox_github_credentials(settings.data_dir)
    github = GitHubStandIn(creds.app_id, creds.private_key)
    await github.start()
    source = demo_dir / "upstream" / DEMO_OWNER / DEMO_REPO
    sha = make_sample_repo(source)
    clone_url = f"file://{source}"
    github.add_installation(DEMO_INSTALLATION, DEMO_OWNER, [repository_json(clone_url)], account_type="Organization")
    slack = SlackStandIn()
    await slack.start()
    demo_settings = settings.model_copy(update={
        "slack_signing_secret": SecretStr(secrets.token_hex(16)), "slack_bot_token": SecretStr(slack.bot_token),
        "slack_api_url": slack.api_url,
        "github_app_id": creds.app_id, "github_private_key": SecretStr(creds.private_key),
        "github_webhook_secret": SecretStr(creds.webhook_secret), "github_api_url": github.url, "github_web_url": github.url,
        "data_dir": demo_dir, "repos_root": demo_dir / "repos", "state_url": None, "port": 0,
    })
    printer = StagePrinter(out)
    out.write(f"Easy Deploy demo: {DEMO_OWNER}/{DEMO_REPO} at {sha[:7]}\n")
    services = await build_services(demo_settings, reporters=[printer])
    # #deploys follows the sample repository, as `/deploy subscribe octo-demo/hello-flask` would do.
    await services.extras["slack"].store.subscribe(Channel(slack.team_id, DEMO_CHANNEL), DEMO_OWNER, DEMO_REPO, "demo")
    runner, base_url = await serve_local(create_app(services))
    url = f"{base_url}/github/webhooks"
    out.write(f"service listening on {base_url} (AWS emulator at {services.extras.get('aws_endpoint')})\n")
    secret = services.webhook_secret
    try:
        async with aiohttp.ClientSession() as http:
            for event, payload in (("installation", installation_payload(clone_url)), ("push", push_payload(sha, clone_url))):
                status = await send_webhook(http, url, secret, event, payload)
                out.write(f"POST /github/webhooks {event}: {status}\n")
        deadline = time.monotonic() + timeout
        while not printer.finished and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the Slack message is updated a moment after the deploy ends
        print_github_calls(github, out)
        print_slack_messages(slack, out)
        if not printer.finished:
            out.write(f"demo: the deploy did not finish within {timeout:.0f}s\n")
            return 1
        deploy = next(iter(printer.finished.values()))
        if deploy.state != "succeeded":
            failure = deploy.result.get("failure") or {}
            out.write(f"demo: deploy {deploy.id} {deploy.state}: {failure.get('summary')}\n")
            for line in failure.get("log_lines", [])[-10:]:
                out.write(f"  | {line}\n")
            return 1
        out.write(f"\nDeployed {DEMO_OWNER}/{DEMO_REPO}@{sha[:7]} in {time.monotonic() - printer.started:.1f}s\n")
        out.write(f"App URL: {deploy.result.get('app_url')}\nImage:   {deploy.result.get('image_uri')}\n")
        return 0
    finally:
        await runner.cleanup()
        await github.stop()
        await slack.stop()


async def send_webhook(http: aiohttp.ClientSession, url: str, secret: bytes, event: str, payload: dict[str, Any]) -> int:
    """POST a webhook signed as GitHub signs it; return the status."""
    import hashlib
    import hmac

    body = orjson.dumps(payload)
    headers = {
        "X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": "application/json",
        SIGNATURE_HEADER: "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
        "User-Agent": "GitHub-Hookshot/demo",
    }
    async with http.post(url, data=body, headers=headers) as resp:
        return resp.status


def print_github_calls(github: GitHubStandIn, out: TextIO) -> None:
    """Summarise what the service told GitHub."""
    told = [c for c in github.calls if c.method in ("POST", "PATCH") and "/access_tokens" not in c.path]
    out.write(f"\nWhat GitHub was told ({len(told)} requests; repeats are stage updates of the check run):\n")
    lines: list[list[Any]] = []
    for call in told:
        body = call.json or {}
        detail = ", ".join(f"{k}={body[k]}" for k in ("name", "status", "conclusion", "state", "environment", "environment_url")
                           if k in body)
        line = f"  {call.method} {call.path} -> {call.status} {detail}"
        if lines and lines[-1][0] == line:
            lines[-1][1] += 1
        else:
            lines.append([line, 1])
    for line, count in lines:
        out.write(line + (f"  (x{count})" if count > 1 else "") + "\n")


def print_slack_messages(slack: SlackStandIn, out: TextIO) -> None:
    """Show the live Slack message as it stands at the end."""
    posted = slack.channel_messages(DEMO_CHANNEL)
    out.write(f"\nWhat Slack shows in #{DEMO_CHANNEL} ({len(slack.requests('chat.postMessage'))} post, "
              f"{len(slack.requests('chat.update'))} updates):\n")
    for message in posted:
        for block in message.blocks:
            text = (block.get("text") or {}).get("text") if isinstance(block.get("text"), dict) else None
            texts = [text] if text else [f.get("text", "") for f in block.get("fields", []) or block.get("elements", [])
                                         if isinstance(f, dict) and f.get("type") in ("mrkdwn", "plain_text")]
            for line in texts:
                for part in str(line).splitlines():
                    out.write(f"  | {part}\n")
