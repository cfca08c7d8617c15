"""GitHub reporting as a feature of the service: the reporter, its retry job, and recovery at start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.app import Extension
from bot.reporting.github import REPORT_JOB, GitHubReporter

if TYPE_CHECKING:
    from bot.app import Services

REPORTER_KEY = "github_reporter"


class GitHubReportingExtension(Extension):
    """Reports every deploy on GitHub; `retry_base`/`retry_cap` bound the backoff while GitHub is down."""

    def __init__(self, *, retry_base: float = 5.0, retry_cap: float = 600.0) -> None:
        self.retry_base = retry_base
        self.retry_cap = retry_cap

    async def setup(self, services: "Services") -> None:
        """Build the reporter, tell the deploy service about it, and register the retry job."""
        reporter = GitHubReporter(services.github, services.deploy_store, services.queue,
                                  retry_base=self.retry_base, retry_cap=self.retry_cap)
        services.deploys.reporters.append(reporter)
        services.job_handlers[REPORT_JOB] = reporter.run_job
        services.extras[REPORTER_KEY] = reporter

    async def started(self, services: "Services") -> None:
        """After a restart: queue a report of every deploy in flight or last reported in another state."""
        await services.extras[REPORTER_KEY].reconcile()
