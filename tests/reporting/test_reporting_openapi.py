"""The request validator itself: it must fail loudly on what GitHub would refuse or ignore."""

from __future__ import annotations

import pytest

from bot.sandbox.github_standin import Call
from tests.github_openapi import NonConformingRequest, assert_conforms, find_operation, validate_request


def test_paths_find_their_operation():
    assert find_operation("GET", "/repos/o/r/commits/abc/check-suites").operation_id == "checks/list-suites-for-ref"
    assert find_operation("PATCH", "/repos/o/r/check-runs/12").operation_id == "checks/update"
    assert find_operation("POST", "/app/installations/3/access_tokens").operation_id == "apps/create-installation-access-token"


@pytest.mark.parametrize(("method", "path", "body", "message"), [
    ("DELETE", "/repos/o/r", None, "matches no operation"),
    ("POST", "/repos/o/r/check-runs", {"name": "x"}, "'head_sha' is a required property"),
    ("POST", "/repos/o/r/check-runs", {"name": "x", "head_sha": "a", "environment_url": "u"}, "'environment_url' was unexpected"),
    ("PATCH", "/repos/o/r/check-runs/1", {"status": "completed"}, "not valid under any of the given schemas"),
    ("POST", "/repos/o/r/deployments/1/statuses", {"state": "done"}, "'done' is not one of"),
    ("POST", "/repos/o/r/deployments/1/statuses", {"state": "failure", "description": "d" * 141}, "is too long"),
])
def test_what_github_would_refuse_is_refused_with_a_readable_message(method, path, body, message):
    with pytest.raises(NonConformingRequest, match=message.replace("(", r"\(")):
        validate_request(method, path, body)


def test_a_repository_call_with_the_jwt_does_not_conform():
    class Recorded:
        calls = [Call("GET", "/repos/o/r", {}, {"Authorization": "Bearer a.b.c"}, None, "jwt")]

    with pytest.raises(NonConformingRequest, match="authenticated as 'jwt'"):
        assert_conforms(Recorded())
