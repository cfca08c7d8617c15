"""Prometheus metrics, one registry per service instance (so tests can run several)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]


class Metrics:
    """The service's counters and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = WebhookTally()
        self.registry.register(self.webhooks)
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


class WebhookTally(Collector):
    """Webhooks by event and outcome: a plain dict bump per request, read at scrape time.

    prometheus_client's labelled Counter takes a lock on every increment; on the webhook hot
    path (one process, one event loop) a dict is enough.
    """

    def __init__(self) -> None:
        self.counts: Tally[tuple[str, str]] = Tally()

    def inc(self, event: str, outcome: str) -> None:
        """Count one webhook."""
        self.counts[(event, outcome)] += 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("easydeploy_webhooks", "Webhooks received, by event and outcome", labels=["event", "outcome"])
        for (event, outcome), count in sorted(self.counts.items()):
            family.add_metric([event, outcome], count)
        yield family
