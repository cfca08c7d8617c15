"""Prometheus metrics, one registry per service instance (so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]


class Metrics:
    """The service's counters and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "easydeploy_webhooks_total", "Webhooks received, by event and outcome", ["event", "outcome"], registry=self.registry
        )
        self.job_seconds = Histogram(
            "easydeploy_job_duration_seconds", "Job run time, by kind and outcome", ["kind", "outcome"], registry=self.registry
        )
        self.queue_depth = Gauge("easydeploy_queue_depth", "Jobs queued or running", registry=self.registry)
        self.deploys = Counter("easydeploy_deploys_total", "Deploys finished, by outcome", ["outcome"], registry=self.registry)
        self.slack_commands = Counter(
            "easydeploy_slack_commands_total", "Slack commands, by command and outcome", ["command", "outcome"], registry=self.registry
        )

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
