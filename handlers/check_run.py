"""Check runs and check suites: re-runs, the Redeploy / Roll back buttons, and the wait_for_checks wake-up."""

from __future__ import annotations

from bot.context import Context
from bot.deploys import Deploy, Trigger
from bot.events import App, CheckRunEvent, CheckSuiteEvent
from bot.reporting.checks import CHECK_NAME_ROLLBACK_NOTE, CheckAction, note_check_run
from bot.reporting.records import again_intent, latest_of_commit_in, same_repository
from bot.routing import Router

router = Router()


def ours(app: App | None, ctx: Context) -> bool:
    """True for check runs and suites that Easy Deploy itself created."""
    return app is not None and app.id == ctx.github.app_id


async def _deploy_of_run(event: CheckRunEvent, ctx: Context) -> Deploy | None:
    """The deploy a check run of ours reports (its `external_id` is the deploy id)."""
    if not ours(event.check_run.app, ctx) or not event.check_run.external_id:
        return None
    deploy = await ctx.deploys.deploys.get(event.check_run.external_id)
    installation = event.installation.id if event.installation else None
    if deploy is None or not same_repository(deploy, installation, event.repository.full_name):
        ctx.log.warning("check run %s names no deploy of %s", event.check_run.id, event.repository.full_name)
        return None
    return deploy


def _actor(event: CheckRunEvent | CheckSuiteEvent) -> str | None:
    return event.sender.login if event.sender else None


@router.register("check_run", "rerequested")
async def check_run_rerequested(event: CheckRunEvent, ctx: Context) -> None:
    """Re-run: the same work again (same commit, kind and environment), as a new deploy."""
    deploy = await _deploy_of_run(event, ctx)
    if deploy is None:
        return
    intent = again_intent(deploy, trigger=Trigger.RERUN, actor=_actor(event))
    await ctx.deploys.request(intent, key="rerun:" + ctx.delivery_id)


@router.register("check_suite", "rerequested")
async def check_suite_rerequested(event: CheckSuiteEvent, ctx: Context) -> None:
    """Re-run all: each target of the commit (deploy, build, …) runs again once."""
    if event.installation is None or not ours(event.check_suite.app, ctx):
        return
    repo = event.repository
    deploys = await ctx.deploys.deploys.store.run(latest_of_commit_in, repo.owner.login, repo.name, event.check_suite.head_sha)
    for deploy in deploys:
        if not same_repository(deploy, event.installation.id, repo.full_name):
            continue
        intent = again_intent(deploy, trigger=Trigger.RERUN, actor=_actor(event))
        await ctx.deploys.request(intent, key=f"rerun:{ctx.delivery_id}:{deploy.kind}:{deploy.environment}:{deploy.pr_number}")


@router.register("check_run", "requested_action")
async def check_run_action(event: CheckRunEvent, ctx: Context) -> None:
    """A button on a completed deploy check run: Redeploy or Roll back.

    GitHub shows the buttons only to people with write access to the repository,
    and sends the event only to the App that made the check run.
    """
    deploy = await _deploy_of_run(event, ctx)
    if deploy is None or event.requested_action is None:
        return
    identifier = event.requested_action.identifier
    key = f"action:{event.check_run.id}:{identifier}"  # a double click lands on one deploy
    if identifier == CheckAction.REDEPLOY:
        intent = again_intent(deploy, trigger=Trigger.BUTTON, actor=_actor(event), kind="deploy")
        await ctx.deploys.request(intent, key=key)
    elif identifier == CheckAction.ROLLBACK:
        intent = await ctx.deploys.rollback_intent(
            deploy.owner, deploy.repo, deploy.environment, trigger=Trigger.BUTTON, actor=_actor(event))
        if intent is None:
            await _nothing_to_roll_back(event, ctx, deploy, key)
            return
        await ctx.deploys.request(intent, key=key)
    else:
        ctx.log.warning("check run %s: unknown action %r ignored", event.check_run.id, identifier)


async def _nothing_to_roll_back(event: CheckRunEvent, ctx: Context, deploy: Deploy, key: str) -> None:
    """Say on the commit, once per click target, that there is no earlier good deploy to go back to."""
    ctx.log.info("roll back of %s/%s asked on check run %s: no earlier successful deploy", deploy.owner, deploy.repo, event.check_run.id)
    path = f"/repos/{deploy.owner}/{deploy.repo}"
    existing = await ctx.github.request(
        deploy.installation_id, "GET", f"{path}/commits/{deploy.sha}/check-runs",
        params={"check_name": CHECK_NAME_ROLLBACK_NOTE, "filter": "all"},
    )
    if any(run.get("external_id") == key for run in (existing or {}).get("check_runs", [])):
        return
    body = note_check_run(
        deploy.sha, key, "Nothing to roll back to",
        f"There is no earlier successful deploy of {deploy.full_name} to {deploy.environment}, so nothing was rolled back. "
        f"To undo this commit, revert it and push; Easy Deploy deploys the revert.",
    )
    await ctx.github.request(deploy.installation_id, "POST", f"{path}/check-runs", json=body)


@router.register("check_suite", "completed")
async def check_suite_completed(event: CheckSuiteEvent, ctx: Context) -> None:
    """Another app's suite finished: deploys of that commit waiting for checks look again."""
    if event.installation is None or ours(event.check_suite.app, ctx):
        return
    repo = event.repository
    await ctx.deploys.resume_waiting(repo.owner.login, repo.name, event.check_suite.head_sha)
