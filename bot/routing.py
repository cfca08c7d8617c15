"""Routers: each handler module registers the (event, action) pairs it handles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[Any, Any], Awaitable[None]]


class Router:
    """Maps (event, action) to handlers; `Router(a, b)` combines routers."""

    def __init__(self, *routers: "Router") -> None:
        self._routes: dict[tuple[str, str | None], list[Handler]] = {}
        for router in routers:
            for key, handlers in router._routes.items():
                self._routes.setdefault(key, []).extend(handlers)

    def register(self, event: str, *actions: str) -> Callable[[Handler], Handler]:
        """Decorator: run the handler for `event` with any of `actions` (every action when none)."""

        def decorate(fn: Handler) -> Handler:
            for action in actions or (None,):
                self._routes.setdefault((event, action), []).append(fn)
            return fn

        return decorate

    def handlers_for(self, event: str, action: str | None) -> list[Handler]:
        """Every handler for this event and action, the catch-all ones included."""
        found = list(self._routes.get((event, action), ()))
        if action is not None:
            found += self._routes.get((event, None), ())
        return found

    def handles(self, event: str, action: str | None) -> bool:
        """True when some handler wants this event and action."""
        return bool(self.handlers_for(event, action))

    @property
    def routes(self) -> list[tuple[str, str | None]]:
        """The registered (event, action) pairs, for logs and tests."""
        return sorted(self._routes, key=lambda k: (k[0], k[1] or ""))
