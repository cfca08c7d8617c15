"""Installations: keep tenants and their enabled repositories in the store."""

from __future__ import annotations

from bot.context import Context
from bot.events import InstallationEvent, InstallationRepositoriesEvent
from bot.routing import Router

router = Router()


def _repos(refs) -> list[dict]:
    return [ref.model_dump() for ref in refs or ()]


@router.register("installation", "created", "new_permissions_accepted")
async def installation_created(event: InstallationEvent, ctx: Context) -> None:
    """Record the tenant and its repositories, then provision its AWS identity."""
    await ctx.tenants.save_installation(
        event.installation.model_dump(), _repos(event.repositories), replace_repos=event.action == "created"
    )
    owner = event.installation.account.login if event.installation.account else str(event.installation.id)
    await ctx.deploys.provision_tenant(event.installation.id, owner)
    ctx.log.info("installation %s %s for %s", event.installation.id, event.action, owner)


@router.register("installation", "deleted")
async def installation_deleted(event: InstallationEvent, ctx: Context) -> None:
    """Forget the tenant's token and disable its repositories (AWS resources are kept)."""
    await ctx.tenants.save_installation(event.installation.model_dump())
    await ctx.tenants.set_flags(event.installation.id, deleted=True)
    ctx.github.forget_token(event.installation.id)


@router.register("installation", "suspend", "unsuspend")
async def installation_suspended(event: InstallationEvent, ctx: Context) -> None:
    """A suspended installation deploys nothing until unsuspended."""
    await ctx.tenants.save_installation(event.installation.model_dump())
    await ctx.tenants.set_flags(event.installation.id, suspended=event.action == "suspend")
    if event.action == "suspend":
        ctx.github.forget_token(event.installation.id)


@router.register("installation_repositories", "added", "removed")
async def repositories_changed(event: InstallationRepositoriesEvent, ctx: Context) -> None:
    """Enable added repositories, disable removed ones."""
    await ctx.tenants.set_repos(event.installation.id, _repos(event.repositories_added), enabled=True)
    await ctx.tenants.set_repos(event.installation.id, _repos(event.repositories_removed), enabled=False)
