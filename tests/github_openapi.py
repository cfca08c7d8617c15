"""Validate recorded GitHub requests against GitHub's published REST description.

The description is a trimmed, dereferenced copy of `@octokit/openapi` 23.0.2
(tests/fixtures/github/openapi/, with the script that extracted it). A request
conforms when its method and path match an operation's template and its JSON
body validates against that operation's request body schema. Two rules are
stricter than the description: a property the schema does not name is refused
(GitHub ignores it silently, which hides typos), and the limits GitHub documents
only in prose are checked too.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

DESCRIPTION = Path(__file__).parent / "fixtures" / "github" / "openapi" / "api.github.com.trimmed.json"

# Limits GitHub documents in prose but not in the schema: (operationId, JSON pointer to the property) -> maxLength.
DOCUMENTED_LIMITS = {
    ("repos/create-deployment-status", "/properties/description"): 140,
}

# Endpoints outside the REST description (the OAuth web flow is served by github.com, not the API).
NOT_REST = {("POST", "/login/oauth/access_token")}


class NonConformingRequest(AssertionError):
    """A request GitHub's REST description does not allow."""


@dataclass(frozen=True)
class Operation:
    """One REST operation: how to recognise its path and what body it takes."""

    method: str
    template: str
    operation_id: str
    pattern: re.Pattern[str]
    body_required: bool
    schema: dict[str, Any] | None

    def validate(self, body: Any) -> None:
        """Raise NonConformingRequest when `body` does not fit the request body schema."""
        if self.schema is None:
            if body not in (None, {}, b"", ""):
                raise NonConformingRequest(f"{self.method} {self.template} ({self.operation_id}) takes no body, got {body!r:.200}")
            return
        if body is None:
            if self.body_required:
                raise NonConformingRequest(f"{self.method} {self.template} ({self.operation_id}) needs a JSON body")
            return
        validator = jsonschema.Draft202012Validator(self.schema, format_checker=jsonschema.FormatChecker())
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [f"  at /{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors[:10]]
            raise NonConformingRequest(
                f"{self.method} {self.template} ({self.operation_id}) body does not conform:\n" + "\n".join(lines)
            )


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    # A path, branch or ref at the end of a template may hold slashes (`feature/x`, `docs/a.md`);
    # every other parameter is one segment.
    last = len(parts) - 2 if parts[-1] == "" else -1
    body = "".join(
        ("(.+)" if i == last and p in ("{path}", "{branch}", "{ref}") else "([^/]+)") if p.startswith("{") else re.escape(p)
        for i, p in enumerate(parts)
    )
    return re.compile(body)


def _strict(schema: Any) -> Any:
    """OpenAPI 3.0 → JSON Schema: `nullable`, and unnamed properties refused where the schema is silent."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (_strict(v) if k != "properties" else {n: _strict(s) for n, s in v.items()}) for k, v in schema.items()}
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out and not any(k in out for k in ("anyOf", "oneOf", "allOf")):
        out["additionalProperties"] = False
    if "anyOf" in out and "properties" in out and "additionalProperties" not in out:
        # The check-run update schema: its anyOf branches name only `status`; close the outer object.
        out["additionalProperties"] = False
    return out


def _apply_limits(operation_id: str, schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    for (op_id, pointer), limit in DOCUMENTED_LIMITS.items():
        if op_id != operation_id:
            continue
        node = schema
        for part in pointer.strip("/").split("/"):
            node = node[part]
        node["maxLength"] = limit
    return schema


@functools.cache
def operations() -> tuple[Operation, ...]:
    """The operations in the trimmed description, most specific templates first."""
    data = json.loads(DESCRIPTION.read_text())
    ops = []
    for op in data["operations"]:
        body = op["requestBody"]
        schema = _apply_limits(op["operationId"], _strict(body["schema"])) if body else None
        ops.append(Operation(op["method"], op["path"], op["operationId"], _template_regex(op["path"]),
                             bool(body and body["required"]), schema))
    # A literal segment beats a parameter: `/repos/{o}/{r}/deployments` before `/repos/{o}/{r}/{x}`.
    return tuple(sorted(ops, key=lambda o: (o.template.count("{"), -len(o.template))))


def find_operation(method: str, path: str) -> Operation:
    """The operation a request calls; NonConformingRequest when GitHub has none such."""
    path = path.split("?", 1)[0]
    for op in operations():
        if op.method == method.upper() and op.pattern.fullmatch(path):
            return op
    raise NonConformingRequest(f"{method} {path} matches no operation of GitHub's REST description (or it is not in the trimmed copy: see extract.py)")


def validate_request(method: str, path: str, body: Any) -> Operation:
    """Check one request against GitHub's REST description; return its operation."""
    op = find_operation(method, path)
    op.validate(body)
    return op


def auth_of(call: Any) -> str:
    """How a call authenticated: as the stand-in judged it, or from its header when a fault answered first."""
    if call.auth != "none":
        return call.auth
    scheme, _, credential = call.headers.get("Authorization", "").partition(" ")
    if scheme == "Bearer" and credential.count(".") == 2:
        return "jwt"
    if scheme.lower() == "token" and credential.startswith("ghs_"):
        return "installation"
    return "none"


def assert_conforms(github: Any, *, allow_not_rest: bool = False) -> int:
    """Validate every call the GitHub stand-in recorded, and its authentication; return how many."""
    problems = []
    for call in github.calls:
        if (call.method, call.path) in NOT_REST and allow_not_rest:
            continue
        try:
            validate_request(call.method, call.path, call.json)
        except NonConformingRequest as exc:
            problems.append(str(exc))
            continue
        wanted = "jwt" if call.path.startswith("/app") else "installation"
        if call.path == "/user":
            wanted = "user"
        if auth_of(call) != wanted:
            problems.append(f"{call.method} {call.path} authenticated as {auth_of(call)!r}, GitHub wants {wanted!r}")
    if problems:
        raise NonConformingRequest(f"{len(problems)} request(s) do not conform to GitHub's REST API:\n" + "\n".join(problems))
    return len(github.calls)
