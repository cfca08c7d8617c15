"""The slim extraction: only the fields the models declare, required ones enforced, the rest left out."""

from __future__ import annotations

import orjson
import pytest

from bot.events import EVENT_MODELS, PushEvent, parse_event
from bot.slim import MissingField, NotAnObject, SlimParser, compile_extractor, plain, spec_of
from tests.conftest import webhook_fixture_files


def extract(event: str, body: bytes) -> dict:
    """The slim fields, as the ingress stores them (JSON), read back."""
    parser = SlimParser()
    doc = parser.top_level(body)
    return orjson.loads(orjson.dumps(parser.extract(doc, compile_extractor(spec_of(EVENT_MODELS[event]))), default=plain))


@pytest.mark.parametrize("path", webhook_fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_slim_fields_validate_as_the_full_payload_does(path):
    event = path.parent.name
    body = path.read_bytes()
    slim = extract(event, body)
    assert parse_event(event, slim) == parse_event(event, orjson.loads(body))
    assert len(orjson.dumps(slim)) < len(body)


def test_only_declared_fields_are_kept():
    body = orjson.dumps({"ref": "refs/heads/main", "after": "a" * 40, "commits": [{"id": "x"}] * 50,
                         "repository": {"id": 1, "name": "r", "full_name": "o/r", "owner": {"login": "o", "avatar_url": "x"},
                                        "stargazers_count": 5}})
    slim = extract("push", body)
    assert "commits" not in slim and "stargazers_count" not in slim["repository"]
    assert slim["repository"]["owner"] == {"login": "o"}


def test_missing_required_field_is_named_with_its_path():
    with pytest.raises(MissingField) as err:
        extract("push", orjson.dumps({"ref": "r", "after": "a", "repository": {"id": 1, "name": "r", "full_name": "o/r"}}))
    assert err.value.path == "repository.owner"


@pytest.mark.parametrize("body", [b"{bad", b"[1]", b'"s"', b"", b"\xff"])
def test_not_an_object_is_refused(body):
    with pytest.raises(NotAnObject):
        SlimParser().top_level(body)


def test_the_parser_survives_a_document_kept_alive():
    parser = SlimParser()
    kept = parser.top_level(b'{"a": {"b": 1}}')["a"]  # a reference outlives the parse
    assert parser.top_level(b'{"c": 2}').get("c") == 2
    assert kept is not None


def test_spec_follows_the_model():
    names = {f.key for f in spec_of(PushEvent)}
    assert {"ref", "after", "repository", "installation"} <= names


@pytest.mark.parametrize("secret", [b"", b"s", b"It's a Secret to Everybody", b"k" * 64, b"k" * 65, bytes(range(256))])
def test_signature_checker_matches_the_standard_hmac(secret):
    import hashlib
    import hmac

    from bot.ingress import SignatureChecker

    body = b'{"zen": "Keep it logically awesome."}'
    good = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    checker = SignatureChecker(secret)
    assert checker.valid(body, good) and checker.valid(body, good)  # reusable
    assert not checker.valid(body + b" ", good)
    assert not checker.valid(body, good.replace("sha256=", "sha1="))
    assert not checker.valid(body, None)


def test_an_object_where_a_scalar_belongs_is_serialised_and_refused_by_the_model():
    from pydantic import ValidationError

    data = extract("push", orjson.dumps({"ref": {"not": "a string"}, "after": "a",
                                         "repository": {"id": 1, "name": "r", "full_name": "o/r", "owner": {"login": "o"}}}))
    assert data["ref"] == {"not": "a string"}
    with pytest.raises(ValidationError):
        parse_event("push", data)
