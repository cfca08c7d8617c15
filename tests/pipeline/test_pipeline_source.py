"""The source stage: name validation, containment, token handling, hostile refs, Dockerfile generation."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path

import pytest

from bot.pipeline.config import parse_app_config
from bot.pipeline.source import (
    SourceError,
    detect_framework,
    ensure_dockerfile,
    git_auth_env,
    repo_lock,
    repo_path,
    sync_repository,
    validate_owner,
    validate_repo,
)
from bot.pipeline.testing import BUILDSPECS_DIR, FLASK_APP, GIT_TEST_ENV, commit_files

TOKEN = "ghs_supersecrettoken1234567890abcdef"


@pytest.fixture(autouse=True)
def git_env(monkeypatch):
    for key, value in GIT_TEST_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def upstream(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "upstream"
    return repo, commit_files(repo, FLASK_APP)


@pytest.mark.parametrize("owner", ["acme", "a", "a-b-c", "A1", "x" * 39])
def test_valid_owners(owner):
    assert validate_owner(owner) == owner


@pytest.mark.parametrize("owner", ["", "-acme", "acme-", "a--b", "a_b", "a.b", "x" * 40, "../x", "a/b", "--upload-pack=x"])
def test_invalid_owners(owner):
    with pytest.raises(ValueError):
        validate_owner(owner)


@pytest.mark.parametrize("repo", ["web", "my.repo", "a_b-c", ".github", "x" * 100])
def test_valid_repos(repo):
    assert validate_repo(repo) == repo


@pytest.mark.parametrize("repo", ["", ".", "..", "a/b", "../../etc", "x" * 101, "a b", "a\x00", "repo.git"] + ["--upload-pack=touch x"])
def test_invalid_repos(repo):
    with pytest.raises(ValueError):
        validate_repo(repo)


def test_repo_path_stays_inside_the_root_even_through_symlinks(tmp_path):
    root = tmp_path / "repos"
    root.mkdir()
    assert repo_path(root, "acme", "web") == (root / "acme" / "web").resolve()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "evil").symlink_to(outside)
    with pytest.raises(ValueError, match="escapes"):
        repo_path(root, "evil", "web")


@pytest.mark.parametrize(
    "field, value",
    [
        ("repo", "../../../tmp/pwned"),
        ("owner", "--upload-pack=touch /tmp/pwned"),
        ("sha", "--upload-pack=touch PWNED"),
        ("sha", "HEAD"),
        ("default_branch", "--upload-pack=touch PWNED"),
        ("default_branch", "main..evil"),
        ("clone_url", "--upload-pack=touch PWNED"),
        ("clone_url", "ext::sh -c touch% PWNED"),
        ("clone_url", "https://x-access-token:abc@github.com/a/b.git"),
    ],
)
async def test_hostile_names_and_refs_never_reach_git_or_escape_the_root(tmp_path, upstream, monkeypatch, field, value):
    repo, sha = upstream
    calls: list[tuple] = []
    real_exec = asyncio.create_subprocess_exec

    async def recording_exec(*args, **kw):
        calls.append(args)
        return await real_exec(*args, **kw)

    async def no_shell(*args, **kw):
        raise AssertionError("a shell was used")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_exec)
    monkeypatch.setattr(asyncio, "create_subprocess_shell", no_shell)
    monkeypatch.chdir(tmp_path)
    kwargs = dict(owner="acme", repo="web", sha=sha, default_branch="main", clone_url=f"file://{repo}")
    kwargs[field] = value
    root = tmp_path / "repos"
    with pytest.raises(ValueError):
        await sync_repository(root, kwargs["owner"], kwargs["repo"], kwargs["sha"], kwargs["default_branch"], kwargs["clone_url"], TOKEN)
    assert calls == []  # rejected before any process started
    assert not list(tmp_path.rglob("PWNED")) and not (tmp_path.parent / "pwned").exists()
    assert not root.exists() or {p.name for p in root.iterdir()} <= {".locks"}


async def test_sync_fetches_exactly_the_sha_shallowly_and_keeps_the_token_off_disk(tmp_path, upstream, monkeypatch):
    repo, sha1 = upstream
    sha2 = commit_files(repo, {"README.md": "two"}, "second")
    seen_env: list[dict] = []
    real_exec = asyncio.create_subprocess_exec

    async def recording_exec(*args, **kw):
        seen_env.append({"args": args, "env": kw.get("env", {})})
        return await real_exec(*args, **kw)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_exec)
    root = tmp_path / "repos"
    result = await sync_repository(root, "acme", "web", sha1, "main", f"file://{repo}", TOKEN)
    checkout = result.path
    assert (checkout / "app.py").exists() and not (checkout / "README.md").exists()
    head = os.popen(f"git -C {checkout} rev-parse HEAD").read().strip()
    assert head == sha1
    assert os.popen(f"git -C {checkout} rev-parse --is-shallow-repository").read().strip() == "true"
    # Config came from the default branch head (sha2), where it is unchanged.
    assert "port: 8000" in (result.config_text or "")
    # The token travels only in the environment, as an http.extraheader.
    fetches = [c for c in seen_env if "fetch" in c["args"]]
    assert fetches and all(c["env"]["GIT_CONFIG_KEY_0"] == "http.extraheader" for c in fetches)
    assert all(TOKEN not in " ".join(c["args"]) for c in seen_env)
    header = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert TOKEN.encode() not in data and header.encode() not in data, path
    assert "extraheader" not in (checkout / ".git" / "config").read_text()
    # A second sync moves the same checkout to another commit and cleans it.
    (checkout / "junk.txt").write_text("x")
    await sync_repository(root, "acme", "web", sha2, "main", f"file://{repo}", TOKEN)
    assert (checkout / "README.md").exists() and not (checkout / "junk.txt").exists()


async def test_fetch_failure_output_never_shows_the_token(tmp_path, upstream):
    repo, _ = upstream
    with pytest.raises(SourceError) as err:
        await sync_repository(tmp_path / "repos", "acme", "web", "f" * 40, "main", f"file://{repo}", TOKEN)
    assert "could not be fetched" in err.value.summary
    assert TOKEN not in json.dumps(err.value.log_lines)


def test_git_env_carries_the_token_as_a_header_and_no_prompts(monkeypatch):
    monkeypatch.setenv("GIT_TRACE_CURL", "1")
    env = git_auth_env(TOKEN)
    assert env["GIT_TERMINAL_PROMPT"] == "0" and "GIT_TRACE_CURL" not in env
    assert env["GIT_CONFIG_VALUE_0"] == "Authorization: Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()


async def test_one_sync_per_repository_at_a_time(tmp_path):
    order: list[str] = []

    async def hold(name: str):
        async with repo_lock(tmp_path, "acme", "web", timeout=5):
            order.append(f"{name}-in")
            await asyncio.sleep(0.05)
            order.append(f"{name}-out")

    await asyncio.gather(hold("a"), hold("b"))
    assert order in (["a-in", "a-out", "b-in", "b-out"], ["b-in", "b-out", "a-in", "a-out"])


FRAMEWORKS = {
    "flask": {"requirements.txt": "Flask>=3\n", "app.py": ""},
    "fastapi": {"requirements.txt": "fastapi\nuvicorn\n", "main.py": ""},
    "django": {"requirements.txt": "django\n", "manage.py": "", "mysite/wsgi.py": ""},
    "express": {"package.json": json.dumps({"dependencies": {"express": "4"}, "main": "server.js"})},
    "nextjs": {"package.json": json.dumps({"dependencies": {"next": "14", "react": "18"}})},
    "go": {"go.mod": "module example.com/x\n", "main.go": "package main\n"},
    "static": {"index.html": "<h1>hi</h1>"},
}


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_frameworks_are_detected_and_get_a_dockerfile_and_dockerignore(tmp_path, framework):
    for name, text in FRAMEWORKS[framework].items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    config = parse_app_config("port: 5000")
    assert ensure_dockerfile(tmp_path, config, BUILDSPECS_DIR / "dockerfiles") == framework
    dockerfile = (tmp_path / "Dockerfile").read_text()
    assert "5000" in dockerfile and "{{" not in dockerfile
    assert ".git" in (tmp_path / ".dockerignore").read_text().splitlines()


def test_an_existing_dockerfile_is_kept_and_root_is_honoured(tmp_path):
    (tmp_path / "services" / "api").mkdir(parents=True)
    (tmp_path / "services" / "api" / "Dockerfile").write_text("FROM scratch\n")
    config = parse_app_config("root: services/api")
    assert ensure_dockerfile(tmp_path, config, BUILDSPECS_DIR / "dockerfiles") is None
    assert (tmp_path / "services" / "api" / "Dockerfile").read_text() == "FROM scratch\n"


def test_an_unknown_app_fails_with_advice(tmp_path):
    (tmp_path / "README.md").write_text("hi")
    assert detect_framework(tmp_path) is None
    with pytest.raises(SourceError, match="no supported framework"):
        ensure_dockerfile(tmp_path, parse_app_config(None), BUILDSPECS_DIR / "dockerfiles")


def test_a_root_symlink_out_of_the_repo_is_refused(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "app").symlink_to(tmp_path)
    with pytest.raises(ValueError):
        ensure_dockerfile(repo, parse_app_config("root: app"), BUILDSPECS_DIR / "dockerfiles")
