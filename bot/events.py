"""Lenient models of the GitHub webhook fields the service uses.

GitHub adds fields all the time and omits others depending on the event's
origin, so every model ignores extra keys and makes optional what GitHub may
leave out. Only these slim shapes are stored with a job.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Lenient(BaseModel):
    """Base: unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Account(Lenient):
    login: str
    id: int | None = None
    type: str | None = None


class InstallationRef(Lenient):
    id: int


class Installation(Lenient):
    id: int
    account: Account | None = None
    target_type: str | None = None
    repository_selection: str | None = None
    permissions: dict[str, Any] = {}
    suspended_at: str | None = None


class RepoRef(Lenient):
    """A repository as listed in installation events."""

    id: int
    name: str
    full_name: str
    private: bool = False


class Repository(Lenient):
    id: int
    name: str
    full_name: str
    owner: Account
    default_branch: str | None = None
    master_branch: str | None = None  # push payloads of old carry this
    private: bool = False
    fork: bool = False
    clone_url: str | None = None
    html_url: str | None = None

    @property
    def branch(self) -> str:
        """The default branch, whichever field carries it."""
        return self.default_branch or self.master_branch or "main"


class Pusher(Lenient):
    name: str | None = None


class PingEvent(Lenient):
    zen: str | None = None
    hook_id: int | None = None


class InstallationEvent(Lenient):
    action: str
    installation: Installation
    repositories: list[RepoRef] | None = None
    sender: Account | None = None


class InstallationRepositoriesEvent(Lenient):
    action: str
    installation: Installation
    repository_selection: str | None = None
    repositories_added: list[RepoRef] = []
    repositories_removed: list[RepoRef] = []
    sender: Account | None = None


class PushEvent(Lenient):
    # Only what the push handler reads: pushes are the hot event, and every field here is
    # extracted on the request path (bot.slim).
    ref: str
    after: str
    deleted: bool = False
    repository: Repository
    installation: InstallationRef | None = None
    pusher: Pusher | None = None
    sender: Account | None = None


class PullRequestRepo(Lenient):
    id: int | None = None
    full_name: str | None = None
    fork: bool = False
    clone_url: str | None = None


class PullRequestBranch(Lenient):
    ref: str
    sha: str
    repo: PullRequestRepo | None = None  # null when the fork was deleted


class PullRequest(Lenient):
    number: int
    state: str | None = None
    head: PullRequestBranch
    base: PullRequestBranch
    user: Account | None = None
    html_url: str | None = None
    merged: bool | None = None


class PullRequestEvent(Lenient):
    action: str
    number: int
    pull_request: PullRequest
    repository: Repository
    installation: InstallationRef | None = None
    sender: Account | None = None


class App(Lenient):
    id: int | None = None
    slug: str | None = None
    name: str | None = None


class CheckSuiteRef(Lenient):
    id: int
    head_branch: str | None = None
    head_sha: str | None = None


class CheckRun(Lenient):
    id: int
    name: str
    head_sha: str
    status: str | None = None
    conclusion: str | None = None
    external_id: str | None = None
    app: App | None = None
    check_suite: CheckSuiteRef | None = None


class RequestedAction(Lenient):
    identifier: str


class CheckRunEvent(Lenient):
    action: str
    check_run: CheckRun
    requested_action: RequestedAction | None = None
    repository: Repository
    installation: InstallationRef | None = None
    sender: Account | None = None


class CheckSuite(Lenient):
    id: int
    head_sha: str
    head_branch: str | None = None
    status: str | None = None
    conclusion: str | None = None
    app: App | None = None
    latest_check_runs_count: int | None = None


class CheckSuiteEvent(Lenient):
    action: str
    check_suite: CheckSuite
    repository: Repository
    installation: InstallationRef | None = None
    sender: Account | None = None


EVENT_MODELS: dict[str, type[Lenient]] = {
    "ping": PingEvent,
    "installation": InstallationEvent,
    "installation_repositories": InstallationRepositoriesEvent,
    "push": PushEvent,
    "pull_request": PullRequestEvent,
    "check_run": CheckRunEvent,
    "check_suite": CheckSuiteEvent,
}


def parse_event(event: str, data: dict) -> Lenient:
    """Validate a decoded payload against the slim model of its event."""
    return EVENT_MODELS[event].model_validate(data)


def installation_id_of(model: Lenient) -> int | None:
    """The installation an event belongs to, if it names one."""
    inst = getattr(model, "installation", None)
    return inst.id if inst is not None else None
