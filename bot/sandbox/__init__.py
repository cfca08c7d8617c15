"""The embedded sandbox: local credentials, a GitHub stand-in, the AWS emulator."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

SANDBOX_APP_ID = 1


@dataclass(frozen=True)
class SandboxGitHubCredentials:
    app_id: int
    private_key: str
    webhook_secret: str


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def generate_private_key() -> str:
    """A fresh 2048-bit RSA key in PEM (what GitHub hands an App)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def sandbox_github_credentials(data_dir: Path) -> SandboxGitHubCredentials:
    """The sandbox App's key and webhook secret, made once and kept (mode 0600) in the data dir."""
    folder = data_dir / "sandbox"
    key_file, secret_file = folder / "github-app.pem", folder / "webhook-secret"
    if not key_file.exists():
        _write_private(key_file, generate_private_key())
    if not secret_file.exists():
        _write_private(secret_file, secrets.token_hex(20))
    return SandboxGitHubCredentials(SANDBOX_APP_ID, key_file.read_text(), secret_file.read_text().strip())


async def serve_local(app: "web.Application", host: str = "127.0.0.1", port: int = 0) -> tuple["web.AppRunner", str]:
    """Serve an aiohttp app on a loopback port (0: any free one); return its runner and base URL."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://{host}:{bound}"
