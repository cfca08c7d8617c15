"""`easydeploy demo`, the README's run command, succeeds end to end on the sandbox."""

from __future__ import annotations

import io

from bot.demo import run_demo
from bot.settings import Settings


async def test_demo_deploys_the_sample_app(tmp_path):
    out = io.StringIO()
    code = await run_demo(Settings(_env_file=None, data_dir=tmp_path / "data"), timeout=90, out=out)
    text = out.getvalue()
    assert code == 0, text
    for stage in ("identity", "source", "build", "release"):
        assert f"{stage:<9} succeeded" in text
    assert "POST /github/webhooks push: 202" in text
    assert "App URL: https://octo-demo-" in text and ".apps.localhost" in text
    assert "check-runs/" in text and "conclusion=success" in text and "state=success" in text
    assert "What Slack shows" in text and "Deployed" in text
