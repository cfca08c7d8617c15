"""The `easydeploy` command: serve, doctor, demo, register."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the subcommand and run it; the return value is the exit code."""
    parser = argparse.ArgumentParser(prog="easydeploy", description="Deploy GitHub repositories to AWS.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the service (webhooks, Slack, workers)")
    sub.add_parser("doctor", help="print the configuration (secrets masked) and check GitHub, Slack and AWS")
    demo = sub.add_parser("demo", help="deploy a sample app end to end on the sandbox")
    demo.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    sub.add_parser("register", help="create the GitHub App from app.yml (GitHub's manifest flow)", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "register":
        from bot.register import main as register_main

        return register_main(list(rest))
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    from bot.logs import setup_logging
    from bot.settings import load_settings

    settings = load_settings()
    setup_logging()
    if args.command == "serve":
        from bot.serve import serve

        return serve(settings)
    if args.command == "doctor":
        from bot.doctor import doctor

        return asyncio.run(doctor(settings, sys.stdout))
    if args.command == "demo":
        from bot.demo import run_demo

        return asyncio.run(run_demo(settings, timeout=args.timeout))
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
