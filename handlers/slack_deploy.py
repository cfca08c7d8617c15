"""The `/deploy` command and the deploy message's buttons, from Slack.

Bolt listeners acknowledge first and work after: the acknowledgement leaves
within milliseconds, then the GitHub calls and the deploy request run and the
answer goes to the command's `response_url`. Every deploy goes through
`DeployService.request`, keyed so that a retried command or a double click
lands on the same deploy.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp

from bot.deploys import DeployIntent, DeployRequested, Trigger
from bot.github import GitHubError
from bot.locks import Lock, Locks
from bot.slack.access import Refused, clone_url_of, find_repo, needed_access, require_access, resolve_ref
from bot.slack.commands import Command, CommandKind, RepoName, help_text, parse_command
from bot.slack.identity import GitHubLinker, linking_configured
from bot.slack.messages import REDEPLOY_ACTION, ROLLBACK_ACTION, escape, history_message, lock_text, status_message
from bot.slack.store import Channel, SlackStore
from bot.tenants import RepoRecord

if TYPE_CHECKING:
    from bot.app import Services

log = logging.getLogger(__name__)

SLASH_COMMAND = "/deploy"
STATUS_DEPLOYS = 30
HISTORY_DEPLOYS = 10


class Outcome(StrEnum):
    """How a command ended, for the metrics."""

    OK = "ok"
    INVALID = "invalid"
    REFUSED = "refused"
    ERROR = "error"


@dataclass(frozen=True)
class Caller:
    """Who typed the command or clicked the button, and where."""

    team_id: str
    user_id: str
    channel_id: str | None


@dataclass(frozen=True)
class Reply:
    """What to answer: ephemeral (only the caller sees it) unless `in_channel`."""

    text: str
    blocks: list[dict[str, Any]] | None = None
    in_channel: bool = False

    def as_response(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for Bolt's `respond`."""
        args: dict[str, Any] = {"text": self.text, "response_type": "in_channel" if self.in_channel else "ephemeral", **extra}
        if self.blocks:
            args["blocks"] = self.blocks
        return args


def not_linked_reply() -> Reply:
    """What an unlinked user is told."""
    return Reply("Your Slack account is not linked to GitHub yet, so I can't check your permissions. "
                 "Run `/deploy link` and sign in to GitHub, then try again.")


def lock_refusal(lock: Lock) -> str:
    """Why a deploy is refused: who holds the lock and why."""
    return (lock_text(lock) + ".\nOnly the holder may deploy until someone runs "
            f"`/deploy unlock {lock.full_name}" + (f" to {lock.environment}`." if lock.environment != "production" else "`."))


class SlackDeploy:
    """The `/deploy` command and the deploy buttons."""

    def __init__(self, services: "Services", store: SlackStore, locks: Locks, linker: GitHubLinker) -> None:
        self.services = services
        self.store = store
        self.locks = locks
        self.linker = linker
        self.web_url = services.settings.github_web_url.rstrip("/")
        self._inflight: set[asyncio.Task[Any]] = set()

    def register(self, app: AsyncApp) -> None:
        """Attach the listeners to a Bolt app."""
        app.command(SLASH_COMMAND)(self.on_command)
        app.action(ROLLBACK_ACTION)(self.on_button)
        app.action(REDEPLOY_ACTION)(self.on_button)

    async def drain(self, timeout: float = 10.0) -> None:
        """Let commands already acknowledged finish (at shutdown)."""
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=timeout)

    def _count(self, command: str, outcome: Outcome) -> None:
        self.services.metrics.slack_commands.labels(command, outcome.value).inc()

    # -- listeners ------------------------------------------------------------

    async def on_command(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        """`/deploy …`: answer help, errors and the link at once; acknowledge the rest and work after."""
        parsed = parse_command(command.get("text", ""))
        caller = Caller(str(command.get("team_id", "")), str(command.get("user_id", "")), command.get("channel_id"))
        if parsed.command is None:
            self._count("invalid", Outcome.INVALID)
            await ack(text=parsed.error, response_type="ephemeral")
            return
        cmd = parsed.command
        if cmd.kind is CommandKind.HELP:
            self._count(cmd.kind.value, Outcome.OK)
            await ack(text=help_text(), response_type="ephemeral")
            return
        if cmd.kind is CommandKind.LINK:
            await ack(text=self.link_text(caller), response_type="ephemeral")
            self._count(cmd.kind.value, Outcome.OK)
            return
        await ack()
        key = f"slack-cmd:{caller.team_id}:{command.get('trigger_id', '')}"
        await self._work(cmd.kind.value, respond, lambda: self.run(cmd, caller, key))

    async def on_button(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        """"Roll back" or "Redeploy" on a deploy message: the same checks as the commands."""
        await ack()
        team_id = str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or "")
        caller = Caller(team_id, str((body.get("user") or {}).get("id", "")), (body.get("channel") or {}).get("id"))
        ts = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get("message_ts") or ""
        action_id = str(action.get("action_id"))
        key = f"slack-action:{team_id}:{ts}:{action_id}"
        name = "button_rollback" if action_id == ROLLBACK_ACTION else "button_redeploy"
        await self._work(name, respond, lambda: self.button(action_id, str(action.get("value", "")), caller, key),
                         replace_original=False)

    async def _work(self, name: str, respond: Any, job: Any, **respond_args: Any) -> None:
        """Run the slow part of a command, answer through the response URL, count the outcome."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            try:
                reply, outcome = await job(), Outcome.OK
            except Refused as exc:
                reply, outcome = Reply(str(exc)), Outcome.REFUSED
            except GitHubError as exc:
                log.warning("slack %s: GitHub error: %s", name, exc)
                reply, outcome = Reply(f":warning: GitHub could not answer ({exc.status or 'no answer'}). Try again in a minute."), Outcome.ERROR
            except Exception:  # noqa: BLE001 - the person gets an answer whatever broke
                log.exception("slack %s failed", name)
                reply, outcome = Reply(":warning: Something went wrong on the Easy Deploy side; it is logged. Try again."), Outcome.ERROR
            self._count(name, outcome)
            try:
                await respond(**reply.as_response(**respond_args))
            except Exception:  # noqa: BLE001 - Slack being down must not raise into Bolt
                log.warning("slack %s: could not answer through the response URL", name, exc_info=True)
        finally:
            if task is not None:
                self._inflight.discard(task)

    # -- the work -------------------------------------------------------------

    def link_text(self, caller: Caller) -> str:
        """The private answer to `/deploy link`."""
        if not linking_configured(self.services.settings):
            return ("Linking is not set up on this Easy Deploy: the operator must set EASYDEPLOY_GITHUB_CLIENT_ID "
                    "and EASYDEPLOY_GITHUB_CLIENT_SECRET (the GitHub App's client id and secret).")
        url = self.linker.sign_in_url(caller.team_id, caller.user_id)
        return (f"<{url}|Sign in with GitHub> to link your Slack account to your GitHub account. "
                "The link is yours alone and works for 10 minutes.")

    async def login_of(self, caller: Caller) -> str:
        """The caller's linked GitHub login; Refused when there is none."""
        login = await self.store.linked_login(caller.team_id, caller.user_id)
        if login is None:
            raise Refused(not_linked_reply().text)
        return login

    async def authorized_repo(self, caller: Caller, cmd: Command, login: str) -> RepoRecord:
        """The repository, checked: installed, enabled, and the caller's access is enough."""
        assert cmd.repo is not None
        s = self.services
        repo = await find_repo(s.tenants, s.store, s.github, cmd.repo, login)
        await require_access(s.github, repo, login, needed_access(cmd.needs_write))
        return repo

    async def run(self, cmd: Command, caller: Caller, key: str) -> Reply:
        """Carry out a parsed command for a caller."""
        if cmd.kind is CommandKind.UNLINK:
            login = await self.store.unlink(caller.team_id, caller.user_id)
            return Reply(f"Unlinked from GitHub `{login}`." if login else "Your Slack account was not linked.")
        login = await self.login_of(caller)
        repo = await self.authorized_repo(caller, cmd, login)
        env = cmd.target_environment
        if cmd.kind is CommandKind.DEPLOY:
            await self.check_lock(repo, env, login)
            sha, ref, default_branch = await resolve_ref(self.services.github, repo, cmd.ref)
            intent = DeployIntent(
                installation_id=repo.installation_id, owner=repo.owner, repo=repo.name, sha=sha, ref=ref,
                default_branch=default_branch, clone_url=await clone_url_of(self.services.github, repo, self.web_url),
                environment=env, trigger=Trigger.SLACK, actor=login,
            )
            return await self.requested(await self.services.deploys.request(intent, key), caller)
        if cmd.kind is CommandKind.ROLLBACK:
            return await self.rollback(repo, env, login, caller, key, cmd.sha, Trigger.SLACK)
        if cmd.kind is CommandKind.LOCK:
            ok, lock = await self.locks.try_lock(repo.owner, repo.name, env, login, cmd.reason, holder_slack_user=caller.user_id)
            if not ok:
                raise Refused(f"Already {lock_text(lock).removeprefix(':lock: ')}.")
            return Reply(f"{lock_text(lock)}.\nDeploys by others are refused and pushes are held until "
                         f"`/deploy unlock {repo.full_name}{'' if env == 'production' else ' to ' + env}`.", in_channel=True)
        if cmd.kind is CommandKind.UNLOCK:
            return await self.unlock(repo, env, login)
        if cmd.kind is CommandKind.STATUS:
            deploys = await self.services.deploy_store.list_for_repo(repo.owner, repo.name, limit=STATUS_DEPLOYS)
            message = status_message(repo.full_name, deploys, await self.locks.for_repo(repo.owner, repo.name), self.web_url)
            return Reply(message["text"], message.get("blocks"))
        if cmd.kind is CommandKind.HISTORY:
            deploys = await self.services.deploy_store.list_for_repo(repo.owner, repo.name, environment=cmd.environment,
                                                                     limit=HISTORY_DEPLOYS)
            message = history_message(repo.full_name, deploys, self.web_url)
            return Reply(message["text"], message.get("blocks"))
        if cmd.kind in (CommandKind.SUBSCRIBE, CommandKind.UNSUBSCRIBE):
            return await self.subscription(cmd.kind, repo, caller, login)
        raise AssertionError(f"unhandled command {cmd.kind}")  # pragma: no cover

    async def check_lock(self, repo: RepoRecord, environment: str, login: str) -> None:
        """Refuse when someone else holds the environment's lock."""
        lock = await self.locks.get(repo.owner, repo.name, environment)
        if lock is not None and not lock.held_by(login):
            raise Refused(lock_refusal(lock))

    async def rollback(self, repo: RepoRecord, env: str, login: str, caller: Caller, key: str, to_sha: str | None,
                       trigger: Trigger) -> Reply:
        """Ask for a rollback to the previous successful deploy (or to `to_sha`)."""
        await self.check_lock(repo, env, login)
        intent = await self.services.deploys.rollback_intent(repo.owner, repo.name, env, to_sha=to_sha, trigger=trigger, actor=login)
        if intent is None:
            if to_sha:
                return Reply(f"There is no successful deploy of `{to_sha}` of `{repo.full_name}` in *{env}* to roll back to.")
            return Reply(f"There is no earlier successful deploy of `{repo.full_name}` in *{env}* to roll back to.")
        return await self.requested(await self.services.deploys.request(intent, key), caller)

    async def unlock(self, repo: RepoRecord, env: str, login: str) -> Reply:
        """Release the lock and start the newest held deploy."""
        removed = await self.locks.unlock(repo.owner, repo.name, env)
        if removed is None:
            return Reply(f"*{env}* of `{repo.full_name}` is not locked.")
        was = "" if removed.held_by(login) else f" (it was held by {escape(removed.holder)})"
        text = f":unlock: *{env}* of `{repo.full_name}` is unlocked by {escape(login)}{was}."
        released = await self.services.deploys.release_held(repo.owner, repo.name, env)
        if released is not None:
            text += f"\nStarting the newest held deploy `{released.id}` ({released.sha[:7]})."
        return Reply(text, in_channel=True)

    async def subscription(self, kind: CommandKind, repo: RepoRecord, caller: Caller, login: str) -> Reply:
        """Start or stop posting a repository's deploys in the caller's channel."""
        if not caller.channel_id:
            raise Refused("I can't tell which channel this is.")
        channel = Channel(caller.team_id, caller.channel_id)
        if kind is CommandKind.SUBSCRIBE:
            if not await self.store.subscribe(channel, repo.owner, repo.name, created_by=login):
                return Reply(f"This channel already gets the deploys of `{repo.full_name}`.")
            return Reply(f":satellite_antenna: This channel now gets one live message per deploy of `{repo.full_name}`. "
                         "(Invite me to the channel if it is private.)", in_channel=True)
        if not await self.store.unsubscribe(channel, repo.owner, repo.name):
            return Reply(f"This channel was not subscribed to `{repo.full_name}`.")
        return Reply(f"This channel no longer gets the deploys of `{repo.full_name}`.", in_channel=True)

    async def requested(self, result: DeployRequested, caller: Caller) -> Reply:
        """The answer to a deploy or rollback request."""
        d = result.deploy
        what = "Rollback" if d.kind == "rollback" else "Deploy"
        target = f"`{d.full_name}`@`{d.sha[:7]}` to *{d.environment}*"
        if not result.created:
            return Reply(f"{what} {target} was already requested: `{d.id}` is {d.state.value}.")
        text = f":rocket: {what} {target} requested by {escape(d.actor or '?')}: `{d.id}` is {d.state.value}."
        if result.superseded:
            text += " It replaces the queued " + ", ".join(f"`{old.id}`" for old in result.superseded) + "."
        if caller.channel_id and Channel(caller.team_id, caller.channel_id) not in await self.store.subscribers(d.owner, d.repo):
            text += f"\nFollow it live here with `/deploy subscribe {d.full_name}`."
        return Reply(text, in_channel=True)

    async def button(self, action_id: str, deploy_id: str, caller: Caller, key: str) -> Reply:
        """A button on a deploy message: redeploy that deploy, or roll its environment back."""
        deploy = await self.services.deploy_store.get(deploy_id)
        if deploy is None:
            raise Refused("That deploy is not known any more.")
        login = await self.login_of(caller)
        cmd = Command(CommandKind.ROLLBACK if action_id == ROLLBACK_ACTION else CommandKind.DEPLOY,
                      RepoName(deploy.owner, deploy.repo), environment=deploy.environment)
        repo = await self.authorized_repo(caller, cmd, login)
        if cmd.kind is CommandKind.ROLLBACK:
            return await self.rollback(repo, deploy.environment, login, caller, key, None, Trigger.BUTTON)
        await self.check_lock(repo, deploy.environment, login)
        intent = deploy.intent(trigger=Trigger.BUTTON, actor=login, untrusted=False, pr_number=None)
        return await self.requested(await self.services.deploys.request(intent, key), caller)

