"""Slack ChatOps: the `/deploy` command, linked GitHub identities and one live message per deploy."""
