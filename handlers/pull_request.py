"""Pull requests: build the head commit as a check (`Easy Deploy / build`), never deploy it."""

from __future__ import annotations

from bot.context import Context
from bot.deploys import DeployIntent, Trigger
from bot.events import PullRequestEvent
from bot.reporting.checks import short_sha
from bot.routing import Router

router = Router()


def from_fork(event: PullRequestEvent) -> bool:
    """True when the head commit comes from another repository (a fork, or one since deleted)."""
    head = event.pull_request.head.repo
    if head is None:
        return True  # GitHub sends `head.repo: null` once the fork is deleted
    if head.id is not None:
        return head.id != event.repository.id
    # `fork` alone is not enough: a PR between two branches of a repo that is itself a fork has fork: true.
    return head.fork or (head.full_name or "").lower() != event.repository.full_name.lower()


def build_intent(event: PullRequestEvent, web_url: str) -> DeployIntent:
    """The build a pull request asks for: its head commit, from the base repository's pull ref."""
    repo, pr = event.repository, event.pull_request
    return DeployIntent(
        installation_id=event.installation.id if event.installation else 0,
        owner=repo.owner.login,
        repo=repo.name,
        sha=pr.head.sha,
        # The base repository serves every PR head (forks included) under refs/pull/<n>/head,
        # so the clone never needs the fork's URL or credentials.
        ref=f"refs/pull/{event.number}/head",
        default_branch=repo.branch,
        clone_url=repo.clone_url or f"{web_url.rstrip('/')}/{repo.full_name}.git",
        kind="build",
        trigger=Trigger.PULL_REQUEST,
        actor=event.sender.login if event.sender else None,
        untrusted=from_fork(event),  # a fork's code builds with no secrets at all
        pr_number=event.number,
    )


@router.register("pull_request", "opened", "synchronize", "reopened")
async def pull_request_build(event: PullRequestEvent, ctx: Context) -> None:
    """Queue a build of the PR's head; a newer push cancels the older build still running."""
    if event.installation is None:
        return
    known = await ctx.tenants.repo(event.repository.full_name)
    if known is not None and not known.enabled:
        ctx.log.info("pull request on %s ignored: repository not enabled for Easy Deploy", event.repository.full_name)
        return
    intent = build_intent(event, ctx.settings.github_web_url)
    requested = await ctx.deploys.request(intent, key="delivery:" + ctx.delivery_id)
    if requested.created and event.action == "synchronize":
        # Pending builds were superseded by `request`; one already running is stopped here.
        await ctx.deploys.cancel_builds(
            intent.owner, intent.repo, event.number, f"superseded by a newer push ({short_sha(intent.sha)})",
            superseded_by=requested.deploy.id,
        )


@router.register("pull_request", "closed")
async def pull_request_closed(event: PullRequestEvent, ctx: Context) -> None:
    """Stop the PR's builds: nobody will read their result."""
    if event.installation is None:
        return
    repo = event.repository
    cancelled = await ctx.deploys.cancel_builds(
        repo.owner.login, repo.name, event.number,
        f"pull request #{event.number} was {'merged' if event.pull_request.merged else 'closed'}",
    )
    if cancelled:
        ctx.log.info("pull request %s#%s closed: cancelled builds %s", repo.full_name, event.number, ", ".join(cancelled))
