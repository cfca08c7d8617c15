"""The `/deploy` parser on its own: plain text in, a command or an error with usage out."""

from __future__ import annotations

import pytest

from bot.slack.commands import Command, CommandKind, RepoName, help_text, parse_command, unescape


def ok(text: str) -> Command:
    result = parse_command(text)
    assert result.error is None, result.error
    assert result.command is not None
    return result.command


def error(text: str) -> str:
    result = parse_command(text)
    assert result.command is None, result.command
    assert result.error
    return result.error


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", "--help", "?"])
def test_help(text):
    assert ok(text).kind is CommandKind.HELP


def test_help_lists_every_command():
    text = help_text()
    for word in ("status", "history", "rollback", "lock", "unlock", "subscribe", "unsubscribe", "link", "unlink", "@ref"):
        assert word in text


def test_deploy_defaults_to_the_default_branch_and_production():
    cmd = ok("acme/web")
    assert cmd == Command(CommandKind.DEPLOY, RepoName("acme", "web"), None, None)
    assert cmd.target_environment == "production"


@pytest.mark.parametrize("text, ref, env", [
    ("acme/web@main", "main", None),
    ("acme/web@feature/login to staging", "feature/login", "staging"),
    ("acme/web@v1.2.3 to Staging", "v1.2.3", "staging"),
    ("acme/web@0123abc in qa", "0123abc", "qa"),
    ("acme/web to preview-7", None, "preview-7"),
    ("deploy acme/web@main to staging", "main", "staging"),
])
def test_deploy_with_ref_and_environment(text, ref, env):
    cmd = ok(text)
    assert (cmd.kind, cmd.repo, cmd.ref, cmd.environment) == (CommandKind.DEPLOY, RepoName("acme", "web"), ref, env)
    assert cmd.target_environment == (env or "production")
    assert cmd.needs_write


def test_bare_repository_name_is_kept_for_lookup():
    cmd = ok("web@main")
    assert cmd.repo == RepoName(None, "web") and cmd.repo.full_name is None and str(cmd.repo) == "web"


@pytest.mark.parametrize("text, problem", [
    ("acme/web@", "is not a branch"),
    ("acme/web@a..b", "is not a branch"),
    ("acme/web@-rf", "is not a branch"),
    ("acme/web@ma~1", "is not a branch"),
    ("acme/web to", "needs a value"),
    ("acme/web to Prod!", "not an environment"),
    ("acme/web to prod to qa", "twice"),
    ("acme/web now please", "don't understand"),
    ("-bad/web", "not a repository"),
    ("acme/we b/x", "don't understand"),
    ("acme/../etc", "not a repository"),
])
def test_deploy_errors_say_what_is_wrong_and_show_usage(text, problem):
    message = error(text)
    assert problem in message
    assert "/deploy owner/repo[@ref] [to <environment>]" in message


def test_an_unknown_command_word_is_not_taken_for_a_repository():
    message = error("statsu acme/web")
    assert "I don't know the command `statsu`" in message
    assert "/deploy status owner/repo" in message


@pytest.mark.parametrize("kind", ["status", "history", "subscribe", "unsubscribe"])
def test_repo_commands(kind):
    cmd = ok(f"{kind} acme/web")
    assert cmd.kind is CommandKind(kind) and cmd.repo == RepoName("acme", "web")
    assert not cmd.needs_write


@pytest.mark.parametrize("kind", ["status", "history", "rollback", "lock", "unlock", "subscribe", "unsubscribe"])
def test_repo_commands_need_a_repository(kind):
    assert f"/deploy {kind} owner/repo" in error(kind)


def test_history_in_an_environment():
    assert ok("history acme/web in staging").environment == "staging"
    assert ok("history acme/web").environment is None  # every environment


def test_status_takes_no_ref():
    assert "not a repository name" in error("status acme/web@main")


def test_rollback():
    cmd = ok("rollback acme/web")
    assert (cmd.kind, cmd.sha, cmd.target_environment) == (CommandKind.ROLLBACK, None, "production")
    cmd = ok("rollback acme/web to 0123ABCdef in staging")
    assert (cmd.sha, cmd.environment) == ("0123abcdef", "staging")
    assert "not a commit SHA" in error("rollback acme/web to main")


def test_lock_with_environment_and_reason():
    cmd = ok("lock acme/web to staging  db migration, back at 3pm")
    assert (cmd.kind, cmd.environment, cmd.reason) == (CommandKind.LOCK, "staging", "db migration, back at 3pm")
    cmd = ok("lock acme/web freeze for the launch")
    assert (cmd.target_environment, cmd.reason) == ("production", "freeze for the launch")
    # "to" after the reason started is part of the reason
    assert ok("lock acme/web waiting to ship").reason == "waiting to ship"
    assert "too long" in error("lock acme/web " + "x" * 400)


def test_unlock():
    cmd = ok("unlock acme/web")
    assert (cmd.kind, cmd.target_environment) == (CommandKind.UNLOCK, "production")
    assert ok("unlock acme/web to staging").environment == "staging"
    assert "don't understand" in error("unlock acme/web because")


def test_link_and_unlink_take_no_arguments():
    assert ok("link").kind is CommandKind.LINK
    assert ok("Unlink").kind is CommandKind.UNLINK
    assert "takes no arguments" in error("link octocat")


def test_slack_escaping_is_undone():
    # With "escape channels, users and links" on, Slack sends links as <url|label> and & as &amp;.
    assert unescape("<http://acme.dev|acme.dev> &amp; &lt;x&gt;") == "acme.dev & <x>"
    assert ok("lock acme/web Q&amp;A <https://x.dev/runbook>").reason == "Q&A https://x.dev/runbook"


def test_non_breaking_spaces_separate_words():
    assert ok("acme/web\u00a0to\u00a0staging").environment == "staging"
