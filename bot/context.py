"""The context a webhook handler receives: the event's ids and the clients it may use."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.deploy_service import DeployService
    from bot.github import GitHubApp
    from bot.settings import Settings
    from bot.tenants import Tenants


@dataclass
class Context:
    """Passed to every handler with the parsed event."""

    delivery_id: str
    event: str
    action: str | None
    settings: "Settings"
    github: "GitHubApp"
    tenants: "Tenants"
    deploys: "DeployService"
    log: logging.LoggerAdapter
