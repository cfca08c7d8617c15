"""`easydeploy register` end to end: the local page, a browser, and a stand-in for GitHub's manifest flow.

The stand-in answers the conversion with GitHub's own example response (fixtures/, taken from
@octokit/openapi), so the parsing is tested against the real shape.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import socket
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import REPO
from dotenv import dotenv_values

from bot import register

CONVERSION = json.loads((Path(__file__).parent / "fixtures" / "app-manifest-conversion.json").read_text())["response"]
SECRET_VALUES = [CONVERSION["client_secret"], CONVERSION["webhook_secret"], CONVERSION["pem"].splitlines()[1]]
GOOD_CODE = "a1b2c3d4e5"


class GitHubManifestStandIn:
    """GitHub's two halves of the manifest flow: the new-App page and the conversions endpoint."""

    def __init__(self, conversion_status: int = 201) -> None:
        self.conversion_status = conversion_status
        self.posted: list[dict[str, Any]] = []
        self.conversions: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/settings/apps/new", self.new_app)
        app.router.add_post("/organizations/{org}/settings/apps/new", self.new_app)
        app.router.add_post("/api/v3/app-manifests/{code}/conversions", self.convert)
        return app

    async def new_app(self, request: web.Request) -> web.Response:
        form = await request.post()
        manifest = json.loads(str(form["manifest"]))
        self.posted.append({"path": request.path, "state": request.query.get("state"), "manifest": manifest})
        # GitHub creates the App, then redirects the browser with a temporary code.
        location = f"{manifest['redirect_url']}?code={GOOD_CODE}&state={request.query['state']}"
        raise web.HTTPFound(location)

    async def convert(self, request: web.Request) -> web.Response:
        self.conversions.append({"code": request.match_info["code"], "headers": dict(request.headers), "body": await request.read()})
        if request.match_info["code"] != GOOD_CODE or self.conversion_status == 404:
            return web.json_response({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, status=404)
        return web.json_response(CONVERSION, status=self.conversion_status)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _open_page(browser: aiohttp.ClientSession, port: int) -> str:
    """The local page, once the register thread is serving it."""
    for _ in range(200):
        try:
            async with browser.get(f"http://127.0.0.1:{port}/") as resp:
                assert resp.headers["Cache-Control"] == "no-store"
                return await resp.text()
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.05)
    raise AssertionError("the register page never came up")


def _form(page: str) -> tuple[str, str]:
    action = html.unescape(re.search(r"action='([^']+)'", page).group(1))
    manifest = html.unescape(re.search(r"name='manifest' value='([^']+)'", page).group(1))
    return action, manifest


@pytest.fixture
async def github(aiohttp_server, monkeypatch: pytest.MonkeyPatch):
    standin = GitHubManifestStandIn()
    server = await aiohttp_server(standin.app())
    base = str(server.make_url("")).rstrip("/")
    monkeypatch.setenv("EASYDEPLOY_GITHUB_WEB_URL", base)
    monkeypatch.setenv("EASYDEPLOY_GITHUB_API_URL", base + "/api/v3")
    return standin


def _start(env_file: Path, port: int, *extra: str) -> asyncio.Future[int]:
    argv = ["--port", str(port), "--public-url", "https://easydeploy.apps.example.com/", "--timeout", "20", *extra]
    return asyncio.ensure_future(asyncio.to_thread(register.main, argv, settings_env_file=str(env_file)))


async def test_register_creates_the_app_and_writes_env_0600(github: GitHubManifestStandIn, tmp_path: Path, capsys) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# my settings\nEASYDEPLOY_AWS_MODE=sandbox\nEASYDEPLOY_GITHUB_APP_ID=999\nexport OTHER='kept'\n")
    os.chmod(env_file, 0o644)
    port = _free_port()
    running = _start(env_file, port)

    async with aiohttp.ClientSession() as browser:
        page = await _open_page(browser, port)
        action, manifest_json = _form(page)
        assert "document.getElementById('manifest-form').submit()" in page
        # The browser posts the form to GitHub and follows the redirect back to the local page.
        async with browser.post(action, data={"manifest": manifest_json}) as resp:
            assert resp.status == 200, await resp.text()
            done = await resp.text()
    assert await running == 0

    # What GitHub received: the rendered manifest, with the state of this run.
    (posted,) = github.posted
    assert posted["path"] == "/settings/apps/new"
    assert posted["state"] and len(posted["state"]) >= 32
    manifest = posted["manifest"]
    assert manifest["hook_attributes"] == {"url": "https://easydeploy.apps.example.com/github/webhooks", "active": True}
    assert manifest["callback_urls"] == ["https://easydeploy.apps.example.com/github/oauth/callback"]
    assert manifest["redirect_url"] == f"http://127.0.0.1:{port}/github/manifest/callback"
    assert manifest["default_permissions"]["checks"] == "write"
    assert "${" not in json.dumps(manifest)

    # The code was exchanged exactly once, as GitHub documents the call.
    (conversion,) = github.conversions
    assert conversion["code"] == GOOD_CODE
    assert conversion["headers"]["Accept"] == "application/vnd.github+json"
    assert conversion["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
    assert "Authorization" not in conversion["headers"]

    # .env: 0600, merged, every credential readable back.
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dotenv_values(env_file)
    assert values["EASYDEPLOY_AWS_MODE"] == "sandbox" and values["OTHER"] == "kept"
    assert values["EASYDEPLOY_GITHUB_APP_ID"] == str(CONVERSION["id"])
    assert values["EASYDEPLOY_GITHUB_PRIVATE_KEY"] == CONVERSION["pem"]
    assert values["EASYDEPLOY_GITHUB_WEBHOOK_SECRET"] == CONVERSION["webhook_secret"]
    assert values["EASYDEPLOY_GITHUB_CLIENT_ID"] == CONVERSION["client_id"]
    assert values["EASYDEPLOY_GITHUB_CLIENT_SECRET"] == CONVERSION["client_secret"]
    assert env_file.read_text().count("EASYDEPLOY_GITHUB_APP_ID=") == 1
    assert env_file.read_text().startswith("# my settings\n")

    # Never a secret on the terminal or in the browser.
    out = capsys.readouterr()
    for secret in SECRET_VALUES:
        assert secret not in out.out + out.err
        assert secret not in done
    assert "octoapp" in out.out and str(env_file) in out.out


async def test_the_service_settings_read_what_register_wrote(github: GitHubManifestStandIn, tmp_path: Path) -> None:
    settings = pytest.importorskip("bot.settings")
    env_file = tmp_path / ".env"
    port = _free_port()
    running = _start(env_file, port)
    async with aiohttp.ClientSession() as browser:
        action, manifest_json = _form(await _open_page(browser, port))
        async with browser.post(action, data={"manifest": manifest_json}) as resp:
            assert resp.status == 200
    assert await running == 0
    loaded = settings.Settings(_env_file=str(env_file))
    assert loaded.github_app_id == CONVERSION["id"]
    assert loaded.github_private_key.get_secret_value() == CONVERSION["pem"]
    assert loaded.github_webhook_secret.get_secret_value() == CONVERSION["webhook_secret"]
    assert loaded.github_client_id == CONVERSION["client_id"]


async def test_a_callback_with_another_state_is_refused_and_writes_nothing(github: GitHubManifestStandIn, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    port = _free_port()
    running = _start(env_file, port)
    async with aiohttp.ClientSession() as browser:
        action, manifest_json = _form(await _open_page(browser, port))
        forged = f"http://127.0.0.1:{port}/github/manifest/callback?code={GOOD_CODE}&state=forged"
        async with browser.get(forged) as resp:
            assert resp.status == 400
        assert not github.conversions and not env_file.exists()
        # The real redirect still completes the registration.
        async with browser.post(action, data={"manifest": manifest_json}) as resp:
            assert resp.status == 200
    assert await running == 0
    assert len(github.conversions) == 1


async def test_the_code_is_exchanged_once(github: GitHubManifestStandIn, aiohttp_client, tmp_path: Path) -> None:
    options = register.RegisterOptions(
        manifest={"redirect_url": "http://127.0.0.1/github/manifest/callback"},
        env_file=tmp_path / ".env",
        host="127.0.0.1",
        port=3000,
        web_url=os.environ["EASYDEPLOY_GITHUB_WEB_URL"],
        api_url=os.environ["EASYDEPLOY_GITHUB_API_URL"],
        org=None,
        timeout=5,
    )
    async with aiohttp.ClientSession() as session:
        flow = register.ManifestFlow(options, session)
        client = await aiohttp_client(flow.app())
        callback = f"/github/manifest/callback?code={GOOD_CODE}&state={flow.state}"
        assert (await client.get(callback)).status == 200
        assert (await client.get(callback)).status == 409
        assert (await client.get(f"/github/manifest/callback?code=../../x&state={flow.state}")).status == 409
    assert len(github.conversions) == 1
    assert (await flow.result).app_id == CONVERSION["id"]


async def test_a_malformed_code_never_reaches_github(github: GitHubManifestStandIn, aiohttp_client, tmp_path: Path) -> None:
    options = register.RegisterOptions(
        manifest={}, env_file=tmp_path / ".env", host="127.0.0.1", port=3000,
        web_url="http://unused", api_url=os.environ["EASYDEPLOY_GITHUB_API_URL"], org=None, timeout=5,
    )
    async with aiohttp.ClientSession() as session:
        flow = register.ManifestFlow(options, session)
        client = await aiohttp_client(flow.app())
        resp = await client.get(f"/github/manifest/callback?code=..%2F..%2Fuser&state={flow.state}")
        assert resp.status == 502
    assert not github.conversions and not (tmp_path / ".env").exists()


async def test_a_refused_code_fails_without_touching_env(github: GitHubManifestStandIn, tmp_path: Path, capsys) -> None:
    github.conversion_status = 404
    env_file = tmp_path / ".env"
    env_file.write_text("KEEP=1\n")
    before = env_file.read_text()
    port = _free_port()
    running = _start(env_file, port)
    async with aiohttp.ClientSession() as browser:
        action, manifest_json = _form(await _open_page(browser, port))
        async with browser.post(action, data={"manifest": manifest_json}) as resp:
            assert resp.status == 502
    assert await running == 1
    assert env_file.read_text() == before
    assert "run `easydeploy register` again" in capsys.readouterr().err


async def test_org_apps_are_created_in_the_organisation(github: GitHubManifestStandIn, tmp_path: Path) -> None:
    port = _free_port()
    running = _start(tmp_path / ".env", port, "--org", "acme-corp")
    async with aiohttp.ClientSession() as browser:
        action, manifest_json = _form(await _open_page(browser, port))
        assert "/organizations/acme-corp/settings/apps/new?state=" in action
        async with browser.post(action, data={"manifest": manifest_json}) as resp:
            assert resp.status == 200
    assert await running == 0
    assert github.posted[0]["path"] == "/organizations/acme-corp/settings/apps/new"


async def test_no_answer_times_out_and_writes_nothing(tmp_path: Path, capsys) -> None:
    env_file = tmp_path / ".env"
    code = await asyncio.to_thread(register.main, ["--port", str(_free_port()), "--timeout", "0.5"], settings_env_file=str(env_file))
    assert code == 1 and not env_file.exists()
    assert "nothing was written" in capsys.readouterr().err


def test_bad_options_fail_fast(tmp_path: Path, capsys) -> None:
    assert register.main(["--public-url", "ftp://x", "--timeout", "1"], settings_env_file=str(tmp_path / ".env")) == 1
    assert register.main(["--org", "not/an org"], settings_env_file=str(tmp_path / ".env")) == 1
    err = capsys.readouterr().err
    assert "--public-url" in err and "--org" in err


# --- pure helpers ------------------------------------------------------------------------------


def test_render_manifest_fills_every_url_from_app_yml() -> None:
    import yaml

    template = yaml.safe_load((REPO / "app.yml").read_text())
    manifest = register.render_manifest(template, "https://deploy.example.com/", "http://127.0.0.1:3000")
    assert manifest["url"] == "https://deploy.example.com"
    assert manifest["hook_attributes"]["url"] == "https://deploy.example.com/github/webhooks"
    assert manifest["redirect_url"] == "http://127.0.0.1:3000/github/manifest/callback"
    assert template["url"] == "${EASYDEPLOY_PUBLIC_URL}", "the template is not modified"


def test_merge_env_replaces_keeps_and_appends() -> None:
    merged = register.merge_env(
        "A=1\n# comment\nEASYDEPLOY_GITHUB_APP_ID=1\nEASYDEPLOY_GITHUB_APP_ID=2\n",
        {"EASYDEPLOY_GITHUB_APP_ID": "42", "EASYDEPLOY_GITHUB_PRIVATE_KEY": 'line1\nline"2\\'},
    )
    lines = merged.splitlines()
    assert lines[:3] == ["A=1", "# comment", 'EASYDEPLOY_GITHUB_APP_ID="42"']
    assert merged.count("EASYDEPLOY_GITHUB_APP_ID") == 1
    assert lines[-1] == 'EASYDEPLOY_GITHUB_PRIVATE_KEY="line1\\nline\\"2\\\\"'


def test_conversion_without_a_key_is_an_error() -> None:
    with pytest.raises(register.RegistrationError):
        register.credentials_from_conversion({"id": 1, "client_id": "x"})
    values, missing = register.credentials_from_conversion({**CONVERSION, "webhook_secret": None})
    assert missing == ("EASYDEPLOY_GITHUB_WEBHOOK_SECRET",)
    assert set(values) == set(register.CREDENTIAL_FIELDS.values()) - {"EASYDEPLOY_GITHUB_WEBHOOK_SECRET"}
