"""`easydeploy register`: create the GitHub App from app.yml with GitHub's App manifest flow.

1. A small local page (default http://127.0.0.1:3000/) posts the manifest, with its URLs rendered
   from the public URL, to `<github web>/settings/apps/new` (or the organisation's), with a random
   `state`.
2. GitHub creates the App and sends the browser back to the manifest's `redirect_url` with
   `?code=…&state=…`. The page checks the state and exchanges the code once:
   `POST <github api>/app-manifests/{code}/conversions`.
3. The App's id, private key, webhook secret and OAuth client id and secret are merged into the
   .env file, written with mode 0600. Secrets are never printed.

The private key goes into .env itself, as one double-quoted line with `\\n` escapes (the settings
accept that form), so the whole credential set is one file with one set of permissions.

`redirect_url` points at this local page by default, not at the public URL: GitHub redirects the
*browser*, which runs next to this command, and the deployed service has no such route. Pass
`--redirect-base` to use another address (for example when registering over an SSH tunnel).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import re
import secrets
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

PLACEHOLDER = "${EASYDEPLOY_PUBLIC_URL}"
CALLBACK_PATH = "/github/manifest/callback"
DEFAULT_WEB_URL = "https://github.com"
DEFAULT_API_URL = "https://api.github.com"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:3000"
# GitHub's codes are short opaque tokens; anything else never reaches a URL path.
CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
ORG_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")

# Conversion response field -> .env variable.
CREDENTIAL_FIELDS = {
    "id": "EASYDEPLOY_GITHUB_APP_ID",
    "pem": "EASYDEPLOY_GITHUB_PRIVATE_KEY",
    "webhook_secret": "EASYDEPLOY_GITHUB_WEBHOOK_SECRET",
    "client_id": "EASYDEPLOY_GITHUB_CLIENT_ID",
    "client_secret": "EASYDEPLOY_GITHUB_CLIENT_SECRET",
}


class RegistrationError(Exception):
    """The manifest flow failed; the message says what to do and holds no secret."""


@dataclass(frozen=True)
class RegisterOptions:
    """Everything the flow needs, resolved from the command line, the environment and .env."""

    manifest: dict[str, Any]
    env_file: Path
    host: str
    port: int
    web_url: str
    api_url: str
    org: str | None
    timeout: float


@dataclass(frozen=True)
class Registered:
    """What the flow produced that may be shown: no secrets."""

    app_id: int
    slug: str
    html_url: str
    env_file: Path
    missing: tuple[str, ...]


# --- pure helpers ----------------------------------------------------------------------------


def render_manifest(template: Mapping[str, Any], public_url: str, redirect_base: str) -> dict[str, Any]:
    """Replace the public-URL placeholder everywhere and point redirect_url at `redirect_base`."""
    base = public_url.rstrip("/")

    def render(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(PLACEHOLDER, base)
        if isinstance(value, list):
            return [render(v) for v in value]
        if isinstance(value, dict):
            return {k: render(v) for k, v in value.items()}
        return value

    manifest = render(dict(template))
    manifest["redirect_url"] = redirect_base.rstrip("/") + CALLBACK_PATH
    leftover = json.dumps(manifest)
    if "${" in leftover:
        raise RegistrationError("app.yml has a placeholder other than ${EASYDEPLOY_PUBLIC_URL}")
    return manifest


def new_app_url(web_url: str, org: str | None, state: str) -> str:
    """GitHub's page that accepts a posted manifest, for a user or an organisation."""
    base = web_url.rstrip("/")
    path = f"/organizations/{org}/settings/apps/new" if org else "/settings/apps/new"
    return f"{base}{path}?state={state}"


def manifest_page(action: str, manifest: Mapping[str, Any]) -> str:
    """The HTML form that posts the manifest to GitHub, submitted by the browser on load."""
    value = html.escape(json.dumps(manifest), quote=True)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Register the Easy Deploy GitHub App</title></head>"
        "<body><h1>Register the Easy Deploy GitHub App</h1>"
        "<p>Sending the App manifest to GitHub&hellip;</p>"
        f"<form id='manifest-form' method='post' action='{html.escape(action, quote=True)}'>"
        f"<input type='hidden' name='manifest' value='{value}'>"
        "<noscript><button type='submit'>Continue to GitHub</button></noscript>"
        "</form>"
        "<script>document.getElementById('manifest-form').submit();</script>"
        "</body></html>"
    )


def _env_quote(value: str) -> str:
    """One double-quoted .env value; newlines become `\\n` (python-dotenv reads them back)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")
    return f'"{escaped}"'


def merge_env(existing: str, updates: Mapping[str, str]) -> str:
    """Replace the lines that set `updates`' keys, keep every other line, append new keys."""
    pattern = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
    out: list[str] = []
    written: set[str] = set()
    for line in existing.splitlines():
        match = pattern.match(line)
        if match and match.group(1) in updates:
            key = match.group(1)
            if key not in written:  # drop duplicates of a key we set
                out.append(f"{key}={_env_quote(updates[key])}")
                written.add(key)
            continue
        out.append(line)
    missing = [k for k in updates if k not in written]
    if missing:
        if out and out[-1].strip():
            out.append("")
        out.append("# GitHub App credentials, written by `easydeploy register`.")
        out.extend(f"{key}={_env_quote(updates[key])}" for key in missing)
    return "\n".join(out) + "\n"


def credentials_from_conversion(payload: Mapping[str, Any]) -> tuple[dict[str, str], tuple[str, ...]]:
    """The .env values from GitHub's conversion response, and the variables it left empty."""
    values: dict[str, str] = {}
    missing: list[str] = []
    for field, variable in CREDENTIAL_FIELDS.items():
        value = payload.get(field)
        if value in (None, ""):
            missing.append(variable)
        else:
            values[variable] = str(value)
    if "EASYDEPLOY_GITHUB_APP_ID" not in values or "EASYDEPLOY_GITHUB_PRIVATE_KEY" not in values:
        raise RegistrationError("GitHub's answer has no App id or private key; nothing was written")
    return values, tuple(missing)


def write_env_file(path: Path, updates: Mapping[str, str]) -> None:
    """Merge `updates` into the .env file atomically; the result has mode 0600 from the start."""
    existing = path.read_text() if path.exists() else ""
    content = merge_env(existing, updates)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".env.", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- GitHub -----------------------------------------------------------------------------------


async def exchange_code(session: aiohttp.ClientSession, api_url: str, code: str) -> dict[str, Any]:
    """POST /app-manifests/{code}/conversions: the new App with its pem, webhook secret and OAuth pair."""
    if not CODE_PATTERN.fullmatch(code):
        raise RegistrationError("GitHub sent back a malformed code; start again")
    url = f"{api_url.rstrip('/')}/app-manifests/{code}/conversions"
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    async with session.post(url, headers=headers) as response:
        if response.status != 201:
            # The body of an error holds no secret; keep it short.
            detail = (await response.text())[:300]
            raise RegistrationError(
                f"GitHub refused the manifest code (HTTP {response.status}: {detail}). "
                "Codes are single-use and expire after an hour: run `easydeploy register` again."
            )
        return await response.json()


# --- the local page -----------------------------------------------------------------------------


class ManifestFlow:
    """The two routes of the local page and the single result they produce."""

    def __init__(self, options: RegisterOptions, session: aiohttp.ClientSession) -> None:
        self.options = options
        self.session = session
        self.state = secrets.token_urlsafe(32)
        self.result: asyncio.Future[Registered] = asyncio.get_running_loop().create_future()
        self._exchanging = False

    def app(self) -> web.Application:
        """The aiohttp application serving the flow."""
        app = web.Application()
        app.router.add_get("/", self.start)
        app.router.add_get(CALLBACK_PATH, self.callback)
        return app

    async def start(self, request: web.Request) -> web.Response:
        """GET /: the page that posts the manifest to GitHub."""
        action = new_app_url(self.options.web_url, self.options.org, self.state)
        return web.Response(text=manifest_page(action, self.options.manifest), content_type="text/html", headers=_NO_STORE)

    async def callback(self, request: web.Request) -> web.Response:
        """GET /github/manifest/callback?code&state: check the state, exchange the code once, write .env."""
        state = request.query.get("state", "")
        code = request.query.get("code", "")
        if not secrets.compare_digest(state.encode(), self.state.encode()):
            return _page(400, "This request did not come from this registration (state mismatch). Nothing was written.")
        if self.result.done() or self._exchanging:
            return _page(409, "This registration has already used its code.")
        self._exchanging = True
        try:
            payload = await exchange_code(self.session, self.options.api_url, code)
            values, missing = credentials_from_conversion(payload)
            write_env_file(self.options.env_file, values)
        except RegistrationError as exc:
            self.result.set_exception(exc)
            return _page(502, str(exc))
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            error = RegistrationError(f"could not reach GitHub to finish the registration: {type(exc).__name__}")
            self.result.set_exception(error)
            return _page(502, str(error))
        registered = Registered(
            app_id=int(payload["id"]),
            slug=str(payload.get("slug", "")),
            html_url=str(payload.get("html_url", "")),
            env_file=self.options.env_file,
            missing=missing,
        )
        self.result.set_result(registered)
        install = f"{registered.html_url}/installations/new" if registered.html_url else "the App's page"
        return _page(
            200,
            f"The GitHub App {html.escape(registered.slug)} (id {registered.app_id}) was created and its credentials "
            f"were written to {html.escape(str(registered.env_file))}. "
            f"Install it from <a href='{html.escape(install, quote=True)}'>{html.escape(install)}</a>. You can close this window.",
            escape=False,
        )


_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _page(status: int, message: str, *, escape: bool = True) -> web.Response:
    body = html.escape(message) if escape else message
    text = f"<!doctype html><html><head><meta charset='utf-8'><title>Easy Deploy</title></head><body><p>{body}</p></body></html>"
    return web.Response(status=status, text=text, content_type="text/html", headers=_NO_STORE)


async def run_registration(options: RegisterOptions, *, out: Any = sys.stdout) -> Registered:
    """Serve the local page until GitHub's redirect completes the flow, or the timeout passes."""
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": "easydeploy-register"}) as session:
        flow = ManifestFlow(options, session)
        runner = web.AppRunner(flow.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, options.host, options.port)
        await site.start()
        try:
            print(f"Open http://{_display_host(options.host)}:{options.port}/ in your browser to create the GitHub App.", file=out, flush=True)
            try:
                return await asyncio.wait_for(asyncio.shield(flow.result), options.timeout)
            except asyncio.TimeoutError:
                raise RegistrationError(f"no answer from GitHub within {options.timeout:.0f} s; nothing was written") from None
        finally:
            await runner.cleanup()


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)


# --- command line -------------------------------------------------------------------------------


def _read_env_file(path: Path) -> dict[str, str]:
    """Non-secret settings from .env (the web/API/public URLs), without exporting anything."""
    if not path.exists():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _default_manifest_path() -> Path:
    beside_package = Path(__file__).resolve().parent.parent / "app.yml"
    return beside_package if beside_package.exists() else Path("app.yml")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="easydeploy register",
        description="Create the Easy Deploy GitHub App from app.yml (GitHub's App manifest flow) and write its credentials to .env.",
    )
    parser.add_argument("--public-url", help="the service's public URL (default: EASYDEPLOY_PUBLIC_URL, else http://127.0.0.1:3000)")
    parser.add_argument("--host", default="127.0.0.1", help="address of the local page (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="port of the local page (default 3000)")
    parser.add_argument("--org", help="create the App in this organisation instead of your user account")
    parser.add_argument("--env-file", help="the .env file to write (default .env)")
    parser.add_argument("--manifest", type=Path, help="the manifest template (default app.yml)")
    parser.add_argument(
        "--redirect-base",
        help="where GitHub sends the browser back to (default: this local page, http://<host>:<port>)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds (default 900)")
    return parser


def build_options(args: argparse.Namespace, settings_env_file: str, environ: Mapping[str, str]) -> tuple[RegisterOptions, str]:
    """Resolve the options: command line, then the environment, then .env, then defaults."""
    env_file = Path(args.env_file or settings_env_file)
    from_file = _read_env_file(env_file)

    def setting(name: str, default: str) -> str:
        return environ.get(name) or from_file.get(name) or default

    public_url = args.public_url or setting("EASYDEPLOY_PUBLIC_URL", DEFAULT_PUBLIC_URL)
    for label, url in (("--public-url", public_url), ("--redirect-base", args.redirect_base or "http://x")):
        if not url.startswith(("http://", "https://")):
            raise RegistrationError(f"{label} must start with http:// or https://")
    if args.org and not ORG_PATTERN.fullmatch(args.org):
        raise RegistrationError("--org is not a GitHub organisation login")
    if not 0 < args.port < 65536:
        raise RegistrationError("--port must be between 1 and 65535")
    manifest_path = args.manifest or _default_manifest_path()
    try:
        template = yaml.safe_load(manifest_path.read_text())
    except OSError as exc:
        raise RegistrationError(f"cannot read the manifest {manifest_path}: {exc.strerror}") from None
    redirect_base = args.redirect_base or f"http://{_display_host(args.host)}:{args.port}"
    options = RegisterOptions(
        manifest=render_manifest(template, public_url, redirect_base),
        env_file=env_file,
        host=args.host,
        port=args.port,
        web_url=setting("EASYDEPLOY_GITHUB_WEB_URL", DEFAULT_WEB_URL),
        api_url=setting("EASYDEPLOY_GITHUB_API_URL", DEFAULT_API_URL),
        org=args.org,
        timeout=args.timeout,
    )
    return options, public_url


def main(argv: list[str] | None = None, *, settings_env_file: str = ".env") -> int:
    """`easydeploy register`: run the manifest flow; 0 when the credentials are in .env."""
    args = _parser().parse_args(argv)
    try:
        options, public_url = build_options(args, settings_env_file, os.environ)
        print(f"Webhooks will go to {options.manifest['hook_attributes']['url']}", flush=True)
        registered = asyncio.run(run_registration(options))
    except RegistrationError as exc:
        print(f"easydeploy register: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("easydeploy register: interrupted; nothing was written", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"easydeploy register: cannot serve on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"Created GitHub App {registered.slug} (id {registered.app_id}); credentials written to {registered.env_file} (mode 0600).")
    if registered.missing:
        print(f"GitHub returned no value for {', '.join(registered.missing)}; set it in the App's settings and in {registered.env_file}.")
    if registered.html_url:
        print(f"Install it: {registered.html_url}/installations/new")
    print(f"For AWS, copy the values into Secrets Manager (terraform output service_secret_arns); the public URL is {public_url}.")
    return 0
