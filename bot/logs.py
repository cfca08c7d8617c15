"""Structured logs: one line per record, with the delivery and deploy ids of the work at hand."""

from __future__ import annotations

import contextvars
import logging
import sys

import orjson

from bot.github import current_delivery

current_deploy: contextvars.ContextVar[str | None] = contextvars.ContextVar("deploy_id", default=None)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if delivery := current_delivery.get():
            out["delivery_id"] = delivery
        if deploy := current_deploy.get():
            out["deploy_id"] = deploy
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, ids appended."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{k}={v}" for k, v in (("delivery", current_delivery.get()), ("deploy", current_deploy.get())) if v]
        return line + (" [" + " ".join(ids) + "]" if ids else "")


def setup_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    """Configure the root logger once, at start-up."""
    handler = logging.StreamHandler(sys.stderr)
    use_json = (not sys.stderr.isatty()) if json is None else json
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "aiohttp.access", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
