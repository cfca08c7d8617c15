"""Pure core: AWS names and the .easydeploy.yml model."""

from __future__ import annotations

import re

import pytest

from bot.pipeline.config import AppConfig, AppConfigError, parse_app_config, resolve_secrets
from bot.pipeline.names import app_name, app_names, app_url, build_role_name, task_role_name

OWNERS_REPOS = [
    ("acme", "web"),
    ("a" * 39, "r" * 100),
    ("Acme-Corp", "My.Repo_Name"),
    ("x", "..."),
    ("x", "---"),
    ("9", "_"),
]


@pytest.mark.parametrize("owner, repo", OWNERS_REPOS)
def test_names_are_valid_for_every_service(owner, repo):
    n = app_names(7, owner, repo)
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", n.app) and len(n.app) <= 28
    assert len(n.target_group) <= 32 and not n.target_group.startswith("internal-")
    assert re.fullmatch(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*", n.ecr_repository)
    assert len(n.host("apps.example.com").split(".")[0]) <= 63
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{1,254}", n.codebuild_project)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,255}", n.service) and n.family == n.service
    assert n.build_log_group == f"/easydeploy/builds/{n.app}" and n.app_log_group == f"/easydeploy/apps/{n.app}"
    assert n.ecr_repository == f"easydeploy/7/{n.app}" and n.codebuild_project == f"ed-{n.app}"
    assert n.artifact_prefix("abc") == f"artifacts/7/{n.app}/abc/"


def test_names_are_collision_free_and_case_insensitive():
    assert app_name("a-b", "c") != app_name("a", "b-c")
    assert app_name("Acme", "API") == app_name("acme", "api")
    long_a, long_b = app_name("o", "x" * 60 + "a"), app_name("o", "x" * 60 + "b")
    assert long_a != long_b and long_a[:19] == long_b[:19]
    assert app_name("acme", "web", "staging") != app_name("acme", "web")


def test_tenant_names_and_urls():
    assert build_role_name(5) == "ed-5-build" and task_role_name(5) == "ed-5-task"
    assert app_url("acme-web-1234abcd", "apps.example.com") == "https://acme-web-1234abcd.apps.example.com"
    assert app_names(5, "acme", "web").tags() == {"easydeploy:owner": "acme", "easydeploy:repo": "web", "easydeploy:installation": "5"}


def test_config_defaults_and_a_full_file():
    assert parse_app_config(None) == AppConfig() == parse_app_config("") == parse_app_config("# nothing\n")
    config = parse_app_config(
        "port: 3000\nhealth_check_path: /healthz\ncpu: 512\nmemory: 2048\nmin_instances: 2\nmax_instances: 4\n"
        "env:\n  NODE_ENV: production\nsecrets:\n  DB_PASSWORD: db/password\nroot: web\ndockerfile: web/Dockerfile.prod\n"
        "wait_for_checks: true\n"
    )
    assert (config.port, config.cpu, config.memory, config.min_instances, config.max_instances) == (3000, 512, 2048, 2, 4)
    assert resolve_secrets(config, 9) == {"DB_PASSWORD": "/easydeploy/9/db/password"}


@pytest.mark.parametrize(
    "text, key",
    [
        ("prot: 80", "prot"),
        ("port: 70000", "port"),
        ("port: '80'", "port"),
        ("cpu: 300", "cpu"),
        ("cpu: 256\nmemory: 4096", "memory"),
        ("min_instances: 5\nmax_instances: 2", "min_instances"),
        ("max_instances: 500", "max_instances"),
        ("env:\n  DEBUG: true", "env.DEBUG"),
        ("env:\n  1BAD: x", "env"),
        ("env:\n  AWS_SECRET_ACCESS_KEY: x", "env"),
        ("secrets:\n  TOKEN: ../../other", "secrets"),
        ("root: ../other", "root"),
        ("root: /etc", "root"),
        ("dockerfile: ../../Dockerfile", "dockerfile"),
        ("health_check_path: \"/'; rm -rf /\"", "health_check_path"),
        ("wait_for_checks: maybe", "wait_for_checks"),
        ("env:\n  A: x\nsecrets:\n  A: y", "secrets"),
    ],
)
def test_invalid_configs_name_the_bad_key(text, key):
    with pytest.raises(AppConfigError) as err:
        parse_app_config(text)
    assert err.value.key == key and f"`{key}`" in str(err.value)


@pytest.mark.parametrize("text", ["port: [1", "- a list\n- of things", "!!python/object:os.system ls"])
def test_malformed_or_evil_yaml_is_refused(text):
    with pytest.raises(AppConfigError):
        parse_app_config(text)


def test_secrets_outside_the_tenant_prefix_are_refused():
    config = parse_app_config("secrets:\n  A: /easydeploy/8/db")
    with pytest.raises(AppConfigError, match="secrets.A"):
        resolve_secrets(config, 9)
    assert resolve_secrets(config, 8) == {"A": "/easydeploy/8/db"}
