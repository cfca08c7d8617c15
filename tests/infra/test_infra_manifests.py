"""app.yml and slack-app.yml: the least privilege the service needs, the events it handles, its URLs."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import REPO

PUBLIC_URL = "${EASYDEPLOY_PUBLIC_URL}"

# What the service handles (handlers/). installation and installation_repositories
# are delivered to every App without a subscription and may not be listed.
SUBSCRIBED_EVENTS = {"push", "pull_request", "check_run", "check_suite"}
IMPLICIT_EVENTS = {"installation", "installation_repositories", "ping"}
PERMISSIONS = {
    "checks": "write",
    "deployments": "write",
    "contents": "read",
    "metadata": "read",
    "pull_requests": "read",
    "statuses": "read",
}
SLACK_BOT_SCOPES = ["commands", "chat:write"]


@pytest.fixture(scope="module")
def app_manifest() -> dict:
    return yaml.safe_load((REPO / "app.yml").read_text())


@pytest.fixture(scope="module")
def slack_manifest() -> dict:
    return yaml.safe_load((REPO / "slack-app.yml").read_text())


def test_github_app_asks_for_exactly_the_permissions_it_uses(app_manifest: dict) -> None:
    assert app_manifest["default_permissions"] == PERMISSIONS
    assert "administration" not in app_manifest["default_permissions"]


def test_github_app_subscribes_to_the_events_it_handles(app_manifest: dict) -> None:
    events = set(app_manifest["default_events"])
    assert events == SUBSCRIBED_EVENTS
    assert not events & IMPLICIT_EVENTS, "GitHub rejects a manifest that lists the implicit events"
    text = (REPO / "app.yml").read_text()
    for implicit in ("installation", "installation_repositories", "ping"):
        assert implicit in text, f"app.yml should say that {implicit} arrives without a subscription"


def test_github_app_urls(app_manifest: dict) -> None:
    assert app_manifest["url"] == PUBLIC_URL
    assert app_manifest["hook_attributes"] == {"url": f"{PUBLIC_URL}/github/webhooks", "active": True}
    assert app_manifest["redirect_url"] == f"{PUBLIC_URL}/github/manifest/callback"
    assert app_manifest["callback_urls"] == [f"{PUBLIC_URL}/github/oauth/callback"]
    assert app_manifest["name"] and app_manifest["description"]


def test_github_app_manifest_is_commented() -> None:
    lines = (REPO / "app.yml").read_text().splitlines()
    for line in lines:
        if re.match(r"\s+\w+: (read|write)", line):
            assert "#" in line, f"say why: {line.strip()}"
    assert sum(1 for line in lines if line.lstrip().startswith("#")) >= 10


def test_service_routes_match_the_manifest_paths() -> None:
    """The callback path the identity link serves is the one in the manifest."""
    identity = pytest.importorskip("bot.slack.identity")
    assert identity.CALLBACK_PATH == "/github/oauth/callback"


def test_slack_app_has_the_deploy_command_and_interactivity_on_the_events_url(slack_manifest: dict) -> None:
    (command,) = slack_manifest["features"]["slash_commands"]
    assert command["command"] == "/deploy"
    assert command["url"] == f"{PUBLIC_URL}/slack/events"
    interactivity = slack_manifest["settings"]["interactivity"]
    assert interactivity == {"is_enabled": True, "request_url": f"{PUBLIC_URL}/slack/events"}
    assert slack_manifest["settings"]["socket_mode_enabled"] is False


def test_slack_app_asks_only_for_the_bot_scopes_it_uses(slack_manifest: dict) -> None:
    scopes = slack_manifest["oauth_config"]["scopes"]
    assert scopes == {"bot": SLACK_BOT_SCOPES}, "no user scopes, no chat:write.public"
    assert "event_subscriptions" not in slack_manifest.get("settings", {})


def test_slack_bot_calls_only_methods_its_scopes_cover() -> None:
    """chat:write covers chat.postMessage and chat.update; anything else would need a new scope."""
    sources = list((REPO / "bot").rglob("*.py")) + list((REPO / "handlers").rglob("*.py"))
    methods = set()
    for path in sources:
        if "sandbox" in path.parts:
            continue  # the stand-in implements Slack, it does not call it
        methods |= set(re.findall(r"['\"](chat_[a-zA-Z]+|users_[a-zA-Z]+|conversations_[a-zA-Z]+|views_[a-zA-Z]+|reactions_[a-zA-Z]+)['\"]", path.read_text()))
        methods |= set(re.findall(r"\.(chat_[a-zA-Z]+|users_[a-zA-Z]+|conversations_[a-zA-Z]+|views_[a-zA-Z]+|reactions_[a-zA-Z]+)\(", path.read_text()))
    covered = {"chat_postMessage", "chat_update", "chat_postEphemeral", "chat_delete"}
    assert methods <= covered, f"Slack methods outside commands/chat:write: {sorted(methods - covered)}"
