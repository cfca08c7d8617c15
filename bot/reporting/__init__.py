"""GitHub reporting: check runs, deployments and their statuses for every deploy."""
