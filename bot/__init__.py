"""Easy Deploy: a GitHub App and Slack bot that deploys repositories to AWS."""

__version__ = "0.1.0"
