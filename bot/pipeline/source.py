"""The source stage's adapters: validated names → paths, a locked shallow git sync, Dockerfile generation."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import json
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import AsyncIterator

from bot.pipeline.config import CONFIG_FILE, AppConfig

# GitHub: owner is alphanumeric with single hyphens, ≤39, no leading/trailing hyphen.
OWNER_RE = re.compile(r"^(?=.{1,39}$)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$")
REPO_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
BRANCH_RE = re.compile(r"^(?!-)(?!/)(?!.*\.\.)(?!.*//)(?!.*@\{)(?!.*\.lock$)(?!.*/$)(?!.*\.$)[A-Za-z0-9._/-]{1,255}$")
LOCK_POLL_SECONDS = 0.05
OUTPUT_TAIL_LINES = 20


class SourceError(Exception):
    """The commit could not be made available; str() is safe to show (no token)."""

    def __init__(self, summary: str, what_to_do: str, log_lines: list[str] | None = None):
        super().__init__(summary)
        self.summary = summary
        self.what_to_do = what_to_do
        self.log_lines = log_lines or []


def validate_owner(owner: str) -> str:
    """Return owner if it follows GitHub's account name rules, else raise ValueError."""
    if not OWNER_RE.match(owner):
        raise ValueError(f"invalid GitHub owner name: {owner!r}")
    return owner


def validate_repo(repo: str) -> str:
    """Return repo if it follows GitHub's repository name rules, else raise ValueError."""
    if not REPO_RE.match(repo) or repo in {".", ".."} or repo.lower().endswith(".git"):
        raise ValueError(f"invalid GitHub repository name: {repo!r}")
    return repo


def validate_sha(sha: str) -> str:
    """Return sha if it is a full lowercase hex commit id (never a ref or an option)."""
    if not SHA_RE.match(sha):
        raise ValueError(f"invalid commit SHA: {sha!r}")
    return sha


def validate_branch(branch: str) -> str:
    """Return branch if it is a safe branch name (no option look-alike, no `..`)."""
    if not BRANCH_RE.match(branch):
        raise ValueError(f"invalid branch name: {branch!r}")
    return branch


def validate_clone_url(url: str) -> str:
    """Only https:// (GitHub) and file:// (tests, sandbox) URLs, never anything git would read as an option."""
    if not (url.startswith("https://") or url.startswith("file:///")) or any(c in url for c in "\x00\n\r \t"):
        raise ValueError("clone URL must be https:// or file:///")
    if "@" in url.split("/")[2]:
        raise ValueError("clone URL must not carry credentials")
    return url


def repo_path(repos_root: Path, owner: str, repo: str) -> Path:
    """<repos_root>/<owner>/<repo>, after validating both names and checking containment."""
    validate_owner(owner)
    validate_repo(repo)
    root = repos_root.resolve()
    path = (root / owner / repo).resolve()
    if not path.is_relative_to(root) or path.parent.parent != root:
        raise ValueError(f"repository path escapes the repos root: {owner}/{repo}")
    return path


def app_dir(checkout: Path, config: AppConfig) -> Path:
    """The app folder (config.root) inside a checkout, refusing symlinks that leave it."""
    path = (checkout / config.root).resolve()
    if not path.is_relative_to(checkout.resolve()):
        raise ValueError("`root` leaves the repository")
    return path


@contextlib.asynccontextmanager
async def repo_lock(repos_root: Path, owner: str, repo: str, timeout: float) -> AsyncIterator[None]:
    """One sync per repository at a time, across coroutines and processes (flock on a lock file)."""
    # flock locks belong to the open file description, so two opens in one process exclude each
    # other too; polling LOCK_NB keeps the event loop free without a thread per waiter.
    lock_dir = repos_root.resolve() / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"{owner.lower()}__{repo.lower()}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if loop.time() > deadline:
                    raise SourceError(
                        f"another sync of {owner}/{repo} held the checkout for more than {timeout:.0f}s",
                        "Retry the deploy in a minute.",
                    ) from None
                await asyncio.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def git_auth_env(token: str | None) -> dict[str, str]:
    """Environment that hands git the token as an http.extraheader (never in a URL or .git/config)."""
    env = {
        key: value
        for key, value in os.environ.items()
        # No tracing (GIT_TRACE_CURL would print the header) and no inherited repository overrides.
        if not key.startswith(("GIT_TRACE", "GIT_CONFIG_", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX", "GIT_CURL_VERBOSE"))
    }
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_ASKPASS"] = "/bin/false"
    env["GCM_INTERACTIVE"] = "never"
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env["GIT_CONFIG_COUNT"] = "1"
        env["GIT_CONFIG_KEY_0"] = "http.extraheader"
        env["GIT_CONFIG_VALUE_0"] = f"Authorization: Basic {basic}"
    return env


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


async def run_git(args: list[str], cwd: Path, env: dict[str, str], timeout: float, secrets: list[str]) -> str:
    """Run git without a shell; raise SourceError with the (redacted) last output lines on failure."""
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise SourceError(f"git {args[0]} timed out after {timeout:.0f}s", "Retry the deploy; if the repository is very large, tell the platform team.") from None
    if proc.returncode != 0:
        text = _redact(err.decode(errors="replace"), secrets)
        lines = [line for line in text.splitlines() if line.strip()][-OUTPUT_TAIL_LINES:]
        raise GitCommandError(args[0], proc.returncode or 1, lines)
    return out.decode(errors="replace")


class GitCommandError(SourceError):
    """A git command exited non-zero."""

    def __init__(self, command: str, code: int, lines: list[str]):
        super().__init__(f"git {command} failed (exit {code})", "Check that the commit exists and the App can read the repository.", lines)
        self.command = command


@dataclass(frozen=True)
class SyncResult:
    """What the sync produced."""

    path: Path
    config_text: str | None


async def sync_repository(
    repos_root: Path, owner: str, repo: str, sha: str, default_branch: str, clone_url: str,
    token: str | None, *, timeout: float = 300.0,
) -> SyncResult:
    """Fetch .easydeploy.yml from the default branch and check out exactly `sha`, shallowly, under the repo lock."""
    path = repo_path(repos_root, owner, repo)
    validate_sha(sha)
    validate_branch(default_branch)
    validate_clone_url(clone_url)
    env = git_auth_env(token)
    secrets = [token or "", env.get("GIT_CONFIG_VALUE_0", "")]
    async with repo_lock(repos_root, owner, repo, timeout):
        path.mkdir(parents=True, exist_ok=True)
        if not (path / ".git").is_dir():
            await run_git(["init", "--quiet"], path, env, timeout, secrets)

        async def fetch(what: str) -> None:
            # `--` ends the options: neither the URL nor the refspec can become one.
            await run_git(["fetch", "--quiet", "--depth=1", "--no-tags", "--no-recurse-submodules", "--", clone_url, what], path, env, timeout, secrets)

        # The config comes from the default branch's head (never from an unmerged branch).
        try:
            await fetch(f"refs/heads/{default_branch}")
        except GitCommandError as exc:
            raise SourceError(
                f"could not fetch the default branch {default_branch!r} of {owner}/{repo}",
                "Check that the branch exists and that the App is installed on the repository.", exc.log_lines,
            ) from None
        head = (await run_git(["rev-parse", "FETCH_HEAD"], path, env, timeout, secrets)).strip()
        try:
            config_text: str | None = await run_git(["show", f"{head}:{CONFIG_FILE}"], path, env, timeout, secrets)
        except GitCommandError:
            config_text = None
        if head != sha:
            try:
                await fetch(sha)
            except GitCommandError as exc:
                raise SourceError(
                    f"commit {sha[:12]} could not be fetched from {owner}/{repo}",
                    "Check that the commit was pushed and still exists (a force-push may have removed it), then deploy again.",
                    exc.log_lines,
                ) from None
        await run_git(["checkout", "--quiet", "--detach", "--force", sha], path, env, timeout, secrets)
        await run_git(["clean", "-ffdxq"], path, env, timeout, secrets)
        return SyncResult(path=path, config_text=config_text)


class Framework(StrEnum):
    """Frameworks we can write a Dockerfile for."""

    FLASK = "flask"
    FASTAPI = "fastapi"
    DJANGO = "django"
    EXPRESS = "express"
    NEXTJS = "nextjs"
    GO = "go"
    STATIC = "static"


DOCKERIGNORE = ".git\n.github\n**/__pycache__\nnode_modules\n.venv\n.env\n"
PY_ENTRY_CANDIDATES = ("app.py", "main.py", "wsgi.py", "asgi.py", "server.py", "application.py")


def _python_deps(app: Path) -> str:
    text = ""
    for name in ("requirements.txt", "pyproject.toml", "Pipfile", "setup.py"):
        file = app / name
        if file.is_file():
            text += file.read_text(errors="replace").lower()
    return text


def detect_framework(app: Path) -> tuple[Framework, dict[str, str]] | None:
    """Guess the framework of an app folder; returns it with template values, or None."""
    deps = _python_deps(app)
    if (app / "manage.py").is_file():
        project = next((p.parent.name for p in sorted(app.glob("*/wsgi.py"))), "config")
        return Framework.DJANGO, {"module": project}
    if deps or any((app / f).is_file() for f in PY_ENTRY_CANDIDATES):
        entry = next((f for f in PY_ENTRY_CANDIDATES if (app / f).is_file()), "app.py")
        module = entry.removesuffix(".py")
        if "fastapi" in deps:
            return Framework.FASTAPI, {"module": module}
        if "flask" in deps:
            return Framework.FLASK, {"module": module}
    package = app / "package.json"
    if package.is_file():
        try:
            data = json.loads(package.read_text(errors="replace"))
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        all_deps = {**(data.get("dependencies") or {}), **(data.get("devDependencies") or {})}
        if "next" in all_deps:
            return Framework.NEXTJS, {}
        main = data.get("main") if isinstance(data.get("main"), str) else "index.js"
        if not re.match(r"^[A-Za-z0-9._/-]+$", main) or ".." in main:
            main = "index.js"
        return Framework.EXPRESS, {"main": main}
    if (app / "go.mod").is_file():
        return Framework.GO, {}
    if (app / "index.html").is_file():
        return Framework.STATIC, {}
    return None


def render_dockerfile(template_dir: Path, framework: Framework, values: dict[str, str], port: int) -> str:
    """Fill a Dockerfile template from buildspecs/dockerfiles/ ({{port}}, {{module}}, {{main}})."""
    text = (template_dir / f"{framework.value}.Dockerfile").read_text()
    for key, value in {**values, "port": str(port)}.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def ensure_dockerfile(checkout: Path, config: AppConfig, template_dir: Path) -> str | None:
    """Write a Dockerfile and .dockerignore when the app has none; returns the framework used, or None."""
    if config.dockerfile is not None:
        dockerfile = (checkout / config.dockerfile).resolve()
        if not dockerfile.is_relative_to(checkout.resolve()) or not dockerfile.is_file():
            raise SourceError(f"`dockerfile: {config.dockerfile}` does not exist in the repository", "Fix the path in .easydeploy.yml or remove the key.")
        return None
    app = app_dir(checkout, config)
    if not app.is_dir():
        raise SourceError(f"`root: {config.root}` is not a folder in the repository", "Fix `root` in .easydeploy.yml.")
    if (app / "Dockerfile").exists():
        return None
    found = detect_framework(app)
    if found is None:
        raise SourceError(
            "the app has no Dockerfile and no supported framework was recognised",
            "Add a Dockerfile, or use Flask, FastAPI, Django, Express, Next.js, Go or a static site with index.html.",
        )
    framework, values = found
    (app / "Dockerfile").write_text(render_dockerfile(template_dir, framework, values, config.port))
    if not (app / ".dockerignore").exists():
        (app / ".dockerignore").write_text(DOCKERIGNORE)
    return framework.value
