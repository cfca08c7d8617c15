"""Settings: the operator's interface; bad values exit 2 naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_the_sandbox():
    s = Settings(_env_file=None)
    assert s.sandbox and s.port == 3000 and s.workers == 4 and s.host == "127.0.0.1"
    assert s.github_api_url == "https://api.github.com" and s.effective_apps_domain == "apps.localhost"
    assert s.effective_repos_root == Path(".easydeploy/repos")
    assert s.effective_state_url == "sqlite:///.easydeploy/state.db"


def test_reads_the_documented_variables(monkeypatch, app_private_key, tmp_path):
    key_file = tmp_path / "key.pem"
    key_file.write_text(app_private_key)
    monkeypatch.setenv("EASYDEPLOY_GITHUB_APP_ID", "123")
    monkeypatch.setenv("EASYDEPLOY_GITHUB_PRIVATE_KEY", str(key_file))
    monkeypatch.setenv("EASYDEPLOY_GITHUB_API_URL", "https://ghe.example.com/api/v3")
    monkeypatch.setenv("EASYDEPLOY_WORKERS", "8")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    s = Settings(_env_file=None)
    assert s.github_app_id == 123 and s.workers == 8 and s.aws_region == "eu-west-1"
    assert s.github_private_key.get_secret_value().startswith("-----BEGIN")
    assert s.github_api_url == "https://ghe.example.com/api/v3"


def test_escaped_newlines_in_the_key_are_accepted(app_private_key):
    s = Settings(_env_file=None, github_private_key=app_private_key.replace("\n", "\\n"))
    assert s.github_private_key.get_secret_value() == app_private_key


def test_secrets_are_masked():
    s = Settings(_env_file=None, github_webhook_secret="hunter2", slack_bot_token="xoxb-secret")
    shown = s.masked()
    assert shown["EASYDEPLOY_GITHUB_WEBHOOK_SECRET"] == "********"
    assert "hunter2" not in repr(s) and "xoxb-secret" not in str(shown)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"EASYDEPLOY_PORT": "not-a-port"}, "EASYDEPLOY_PORT"),
        ({"EASYDEPLOY_AWS_MODE": "cloud"}, "EASYDEPLOY_AWS_MODE"),
        ({"EASYDEPLOY_GITHUB_PRIVATE_KEY": "/no/such/key.pem"}, "EASYDEPLOY_GITHUB_PRIVATE_KEY"),
        ({"EASYDEPLOY_GITHUB_API_URL": "ftp://x"}, "EASYDEPLOY_GITHUB_API_URL"),
        ({"EASYDEPLOY_AWS_MODE": "aws"}, "EASYDEPLOY_CLUSTER_NAME"),
        ({"EASYDEPLOY_STATE_URL": "dynamodb://easydeploy"}, "EASYDEPLOY_STATE_URL"),
    ],
)
def test_invalid_value_exits_2_naming_the_variable(monkeypatch, capsys, env, named):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exc:
        load_settings(_env_file=None)
    assert exc.value.code == 2
    assert named in capsys.readouterr().err


def test_cli_exits_2_on_bad_settings(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "EASYDEPLOY_WORKERS": "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "bot", "doctor"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "EASYDEPLOY_WORKERS" in proc.stderr


def test_doctor_masks_secrets_and_reports_each_dependency(tmp_path, github, app_private_key):
    env = {
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
        "EASYDEPLOY_GITHUB_APP_ID": "4242", "EASYDEPLOY_GITHUB_PRIVATE_KEY": app_private_key,
        "EASYDEPLOY_GITHUB_WEBHOOK_SECRET": "hunter2", "EASYDEPLOY_GITHUB_API_URL": github.url,
        "EASYDEPLOY_SLACK_BOT_TOKEN": "xoxb-secret", "EASYDEPLOY_SLACK_API_URL": "http://127.0.0.1:9/api/",
    }
    proc = subprocess.run([sys.executable, "-m", "bot", "doctor"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    out = proc.stdout
    assert "hunter2" not in out and "xoxb-secret" not in out and "BEGIN RSA" not in out
    assert "EASYDEPLOY_GITHUB_WEBHOOK_SECRET=********" in out
    lines = {line.split(":")[0]: line for line in out.splitlines() if line.split(":")[0] in ("github", "slack", "aws")}
    assert lines["slack"].startswith("slack: FAIL")
    assert proc.returncode == 1
