"""Pushes: a push to the default branch deploys; tags, other branches and deletions do not."""

from __future__ import annotations

from bot.context import Context
from bot.deploys import DeployIntent, Trigger
from bot.events import PushEvent
from bot.routing import Router

router = Router()

ZERO_SHA = "0" * 40


def deploy_wanted(event: PushEvent) -> bool:
    """True when this push should deploy: a new head on the default branch."""
    if event.deleted or event.after == ZERO_SHA:
        return False
    return event.ref == f"refs/heads/{event.repository.branch}"


@router.register("push")
async def push_to_default_branch(event: PushEvent, ctx: Context) -> None:
    """Record a deploy request and queue the deploy."""
    if event.installation is None or not deploy_wanted(event):
        return
    repo = event.repository
    known = await ctx.tenants.repo(repo.full_name)
    if known is not None and not known.enabled:
        ctx.log.info("push to %s ignored: repository not enabled for Easy Deploy", repo.full_name)
        return
    # GitHub only sends pushes of repositories the App can see: remember new ones.
    await ctx.tenants.set_repos(event.installation.id, [repo.model_dump()], enabled=True)
    intent = DeployIntent(
        installation_id=event.installation.id,
        owner=repo.owner.login,
        repo=repo.name,
        sha=event.after,
        ref=event.ref,
        default_branch=repo.branch,
        clone_url=repo.clone_url or f"{ctx.settings.github_web_url.rstrip('/')}/{repo.full_name}.git",
        trigger=Trigger.PUSH,
        actor=(event.sender.login if event.sender else None) or (event.pusher.name if event.pusher else None),
    )
    await ctx.deploys.request(intent, key="delivery:" + ctx.delivery_id)
