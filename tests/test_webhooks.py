"""The webhook endpoint through HTTP: the checks in their order, dedupe, and every real payload."""

from __future__ import annotations

import uuid

import orjson
import pytest

from tests.conftest import (
    INSTALLATION_ID,
    add_fixture_installation,
    load_webhook,
    sign,
    webhook_fixture_files,
    webhook_headers,
)


async def stored(service) -> tuple[int, int]:
    return (await service.count("SELECT COUNT(*) FROM deliveries"), await service.count("SELECT COUNT(*) FROM jobs"))


async def test_push_is_accepted_and_queued(start_service, github):
    svc = await start_service(start_workers=False)
    payload = load_webhook("push")
    resp = await svc.webhook("push", payload, delivery="d-1")
    assert resp.status == 202
    assert (await resp.json()) == {"accepted": "d-1"}
    assert await stored(svc) == (1, 1)


async def test_wrong_signature_is_refused_and_nothing_stored(start_service):
    svc = await start_service(start_workers=False)
    body = orjson.dumps(load_webhook("push"))
    headers = webhook_headers("push", body)
    headers["X-Hub-Signature-256"] = sign(body, "not the secret")
    resp = await svc.client.post("/github/webhooks", data=body, headers=headers)
    assert resp.status == 401
    assert "X-Hub-Signature-256" in (await resp.json())["error"]
    assert await stored(svc) == (0, 0)


async def test_missing_signature_is_refused(start_service):
    svc = await start_service(start_workers=False)
    body = orjson.dumps(load_webhook("push"))
    headers = webhook_headers("push", body)
    del headers["X-Hub-Signature-256"]
    resp = await svc.client.post("/github/webhooks", data=body, headers=headers)
    assert resp.status == 401
    assert await stored(svc) == (0, 0)


async def test_signature_over_a_different_body_is_refused(start_service):
    svc = await start_service(start_workers=False)
    body = orjson.dumps(load_webhook("push"))
    headers = webhook_headers("push", body)
    resp = await svc.client.post("/github/webhooks", data=body + b" ", headers=headers)
    assert resp.status == 401


async def test_signature_is_checked_before_parsing(start_service):
    svc = await start_service(start_workers=False)
    resp = await svc.client.post("/github/webhooks", data=b"{not json", headers={"X-GitHub-Event": "push"})
    assert resp.status == 401


async def test_missing_event_header_is_400(start_service):
    svc = await start_service(start_workers=False)
    body = orjson.dumps(load_webhook("push"))
    headers = webhook_headers("push", body)
    del headers["X-GitHub-Event"]
    resp = await svc.client.post("/github/webhooks", data=body, headers=headers)
    assert resp.status == 400
    assert "X-GitHub-Event" in (await resp.json())["error"]
    assert await stored(svc) == (0, 0)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2, 3]", b'"a string"', b"", b"\xff\xfe"])
async def test_body_that_is_not_a_json_object_is_400(start_service, body):
    svc = await start_service(start_workers=False)
    resp = await svc.client.post("/github/webhooks", data=body, headers=webhook_headers("push", body))
    assert resp.status == 400
    assert await stored(svc) == (0, 0)


async def test_oversized_body_is_413(start_service):
    svc = await start_service(start_workers=False, max_webhook_bytes=10_000)
    payload = load_webhook("push")
    payload["padding"] = "x" * 20_000
    body = orjson.dumps(payload)
    resp = await svc.client.post("/github/webhooks", data=body, headers=webhook_headers("push", body))
    assert resp.status == 413
    assert await stored(svc) == (0, 0)


async def test_redelivery_is_acknowledged_without_new_work(start_service):
    svc = await start_service(start_workers=False)
    payload = load_webhook("push")
    first = await svc.webhook("push", payload, delivery="same-id")
    second = await svc.webhook("push", payload, delivery="same-id")
    assert (first.status, second.status) == (202, 200)
    assert (await second.json()) == {"duplicate": "same-id"}
    assert await stored(svc) == (1, 1)


async def test_redelivery_after_restart_is_recognised(start_service):
    first = await start_service(start_workers=False)
    payload = load_webhook("push")
    assert (await first.webhook("push", payload, delivery="across-restart")).status == 202
    # A new process on the same store has an empty in-memory cache: the store decides.
    second = await start_service(start_workers=False)
    resp = await second.webhook("push", payload, delivery="across-restart")
    assert resp.status == 200
    assert await stored(second) == (1, 1)


async def test_ping_is_200(start_service):
    svc = await start_service(start_workers=False)
    resp = await svc.webhook("ping", load_webhook("ping"))
    assert resp.status == 200
    assert await stored(svc) == (0, 0)


async def test_unknown_event_is_acknowledged_and_ignored(start_service):
    svc = await start_service(start_workers=False)
    resp = await svc.webhook("star", {"action": "created", "starred_at": None})
    assert resp.status == 200
    assert "ignored" in await resp.json()
    assert await stored(svc) == (0, 0)


async def test_unhandled_action_is_acknowledged_and_ignored(start_service):
    svc = await start_service(start_workers=False)
    resp = await svc.webhook("pull_request", load_webhook("pull_request", "00.assigned.json") if False else {**load_webhook("pull_request"), "action": "labeled"})
    assert resp.status == 200
    assert await stored(svc) == (0, 0)


async def test_payload_missing_needed_fields_is_400_not_500(start_service):
    svc = await start_service(start_workers=False)
    resp = await svc.webhook("push", {"ref": "refs/heads/main", "after": "a" * 40})
    assert resp.status == 400
    assert "repository" in (await resp.json())["error"]
    assert await stored(svc) == (0, 0)


async def test_missing_delivery_id_is_400(start_service):
    svc = await start_service(start_workers=False)
    body = orjson.dumps(load_webhook("push"))
    headers = webhook_headers("push", body)
    del headers["X-GitHub-Delivery"]
    resp = await svc.client.post("/github/webhooks", data=body, headers=headers)
    assert resp.status == 400
    assert await stored(svc) == (0, 0)


@pytest.mark.parametrize("path", webhook_fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_every_github_example_payload_is_handled_without_5xx(start_service, github, path):
    svc = await start_service()
    payload = orjson.loads(path.read_bytes())
    add_fixture_installation(github, payload)
    resp = await svc.webhook(path.parent.name, payload)
    assert resp.status in (200, 202), await resp.text()
    await svc.idle()
    failed = await svc.services.store.fetchall("SELECT kind, last_error FROM jobs WHERE kind = 'webhook' AND (state = 'failed' OR last_error IS NOT NULL)")
    assert [dict(r) for r in failed] == []


async def test_healthz_reports_mode_version_and_depth(service):
    resp = await service.client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["mode"] == "sandbox" and body["queue_depth"] == 0 and body["version"]


async def test_healthz_is_503_without_workers(start_service):
    svc = await start_service(start_workers=False)
    resp = await svc.client.get("/healthz")
    assert resp.status == 503


async def test_metrics_count_webhooks_by_event_and_outcome(start_service):
    svc = await start_service(start_workers=False)
    await svc.webhook("push", load_webhook("push"))
    await svc.client.post("/github/webhooks", data=b"{}", headers={"X-GitHub-Event": "push"})
    text = await (await svc.client.get("/metrics")).text()
    assert 'easydeploy_webhooks_total{event="push",outcome="accepted"} 1.0' in text
    assert 'easydeploy_webhooks_total{event="push",outcome="bad_signature"} 1.0' in text
    assert "easydeploy_queue_depth" in text


async def test_metrics_do_not_take_event_names_from_strangers(start_service):
    svc = await start_service(start_workers=False)
    for i in range(5):
        await svc.client.post("/github/webhooks", data=b"{}", headers={"X-GitHub-Event": f"made-up-{i}"})
    text = await (await svc.client.get("/metrics")).text()
    assert "made-up" not in text
    assert 'easydeploy_webhooks_total{event="other",outcome="bad_signature"} 5.0' in text


async def test_push_to_default_branch_records_a_deploy(service, github):
    payload = load_webhook("push")
    add_fixture_installation(github, payload)
    payload["installation"] = {"id": INSTALLATION_ID}
    branch = payload["repository"]["default_branch"]
    payload["ref"] = f"refs/heads/{branch}"
    payload["deleted"] = False
    assert (await service.webhook("push", payload)).status == 202
    await service.idle()
    deploys = await service.services.store.fetchall("SELECT owner, repo, sha, state FROM deploys")
    assert [tuple(r) for r in deploys] == [
        (payload["repository"]["owner"]["login"], payload["repository"]["name"], payload["after"], "queued")
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"ref": "refs/tags/v1.0"},
        {"ref": "refs/heads/feature"},
        {"deleted": True, "after": "0" * 40},
    ],
    ids=["tag", "other-branch", "deleted-branch"],
)
async def test_pushes_that_do_not_deploy(service, github, change):
    payload = load_webhook("push")
    add_fixture_installation(github, payload)
    payload["installation"] = {"id": INSTALLATION_ID}
    payload.update(change)
    assert (await service.webhook("push", payload)).status == 202
    await service.idle()
    assert await service.count("SELECT COUNT(*) FROM deploys") == 0


async def test_event_from_unseen_installation_fetches_it_first(service, github):
    payload = load_webhook("push")
    payload["installation"] = {"id": 77}
    github.add_installation(77, "octo-org", [payload["repository"]])
    await service.webhook("push", payload)
    await service.idle()
    assert github.requests("GET", r"^/app/installations/77$")[0].auth == "jwt"
    tenant = await service.services.tenants.get(77)
    assert tenant is not None and tenant.account_login == "octo-org"


async def test_installation_lifecycle(service, github):
    created = load_webhook("installation", "01.created.json")
    inst_id = created["installation"]["id"]
    await service.webhook("installation", created)
    await service.idle()
    tenants = service.services.tenants
    assert (await tenants.get(inst_id)).active
    assert {r.full_name for r in await tenants.repos(inst_id)} == {r["full_name"] for r in created["repositories"]}
    await service.webhook("installation", {**created, "action": "suspend"})
    await service.idle()
    assert not (await tenants.get(inst_id)).active
    await service.webhook("installation", {**created, "action": "unsuspend"})
    await service.idle()
    assert (await tenants.get(inst_id)).active
    removed = {"action": "removed", "installation": created["installation"], "repositories_added": [],
               "repositories_removed": created["repositories"][:1], "repository_selection": "selected"}
    await service.webhook("installation_repositories", removed)
    await service.idle()
    assert len(await tenants.repos(inst_id)) == len(created["repositories"]) - 1
    await service.webhook("installation", {**created, "action": "deleted"})
    await service.idle()
    tenant = await tenants.get(inst_id)
    assert tenant.deleted and await tenants.repos(inst_id) == []


async def test_many_concurrent_deliveries_are_all_recorded_once(start_service):
    import asyncio

    svc = await start_service(start_workers=False)
    payload = load_webhook("push")
    ids = [str(uuid.uuid4()) for _ in range(60)]
    responses = await asyncio.gather(*(svc.webhook("push", payload, delivery=d) for d in ids + ids[:10]))
    statuses = sorted(r.status for r in responses)
    assert statuses.count(202) == 60 and statuses.count(200) == 10
    assert await stored(svc) == (60, 60)


async def test_an_unseen_installation_with_many_repositories_is_read_page_by_page(service, github):
    payload = load_webhook("push")
    payload["installation"] = {"id": 88}
    many = [{"id": 10_000 + i, "name": f"r{i}", "full_name": f"octo-org/r{i}", "owner": {"login": "octo-org"}}
            for i in range(230)]
    github.add_installation(88, "octo-org", [payload["repository"], *many])
    await service.webhook("push", payload)
    await service.idle()
    pages = [c.query.get("page") for c in github.requests("GET", r"^/installation/repositories$")]
    assert pages == ["1", "2", "3"]
    assert len(await service.services.tenants.repos(88)) == 231
