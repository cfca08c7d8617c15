"""checkov over terraform/, from its own virtualenv, offline: no failed check beyond the reasoned skips.

The first run creates .venv-checkov and installs checkov (a few minutes); later runs reuse it
as long as tests/infra/checkov-requirements.txt is unchanged.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

CHECKOV_VENV = REPO / ".venv-checkov"
REQUIREMENTS = Path(__file__).with_name("checkov-requirements.txt")
CONFIG = REPO / ".checkov.yaml"


def ensure_checkov_venv() -> Path:
    """Create or refresh .venv-checkov (the same recipe as scripts/infra-checks.sh); give checkov's path."""
    stamp = CHECKOV_VENV / ".requirements"
    checkov = CHECKOV_VENV / "bin" / "checkov"
    if checkov.exists() and stamp.exists() and stamp.read_text() == REQUIREMENTS.read_text():
        return checkov
    base = shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", str(CHECKOV_VENV)], check=True, timeout=300)
    subprocess.run(
        [str(CHECKOV_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
        check=True,
        timeout=1200,
    )
    shutil.copyfile(REQUIREMENTS, stamp)
    return checkov


@pytest.fixture(scope="session")
def checkov_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One checkov run with the repository's config, every result listed."""
    checkov = ensure_checkov_venv()
    config = yaml.safe_load(CONFIG.read_text())
    config["quiet"] = False  # list passed and skipped checks too
    config_file = tmp_path_factory.mktemp("checkov") / "checkov.yaml"
    config_file.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [str(checkov), "--config-file", str(config_file), "-o", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert "Failed to run check" not in result.stderr, "a check crashed, so it never looked: " + result.stderr[-3000:]
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.mark.timeout(1800)
def test_checkov_config_runs_offline_over_terraform() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["skip-download"] is True
    assert config["directory"] == ["terraform"]
    assert config["framework"] == ["terraform"]


@pytest.mark.timeout(1800)
def test_checkov_reports_no_failed_check(checkov_report: dict) -> None:
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in checkov_report["results"]["failed_checks"]]
    assert not failed, "\n".join(failed)
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 400, "checkov saw too little: did it read terraform/?"


@pytest.mark.timeout(1800)
def test_every_skip_gives_a_reason(checkov_report: dict) -> None:
    for check in checkov_report["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason.strip()) > 20, f"{check['check_id']} on {check['resource']} is skipped without a reason"


def test_global_skips_are_explained_in_the_config() -> None:
    text = CONFIG.read_text()
    for check_id in yaml.safe_load(text).get("skip-check", []):
        explained = re.search(rf"^#\s+{re.escape(check_id)}\s+\S.{{20,}}", text, re.MULTILINE)
        assert explained, f"{check_id} is skipped in .checkov.yaml without a reason"
