"""``campaign demo``: the sample campaign end to end against the embedded sandbox.

It needs nothing but this package: a sandbox with some latency answers instead of Sinch, the
database and the report go to ``./campaign-demo/``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from campaign import reporting, run
from campaign.config import (
    SANDBOX_APP_ID,
    SANDBOX_KEY_ID,
    SANDBOX_KEY_SECRET,
    SANDBOX_PROJECT_ID,
    SANDBOX_WEBHOOK_SECRET,
    Config,
    DatabaseConfig,
    SandboxConfig,
    SinchConfig,
)
from campaign.errors import EXIT_INTERRUPTED, InputFileError
from campaign.progress import ProgressDisplay
from campaign.resources import open_resources
from campaign.secrets import Secret

PACKAGE_ROOT = Path(__file__).resolve().parent.parent

#: Share of the demo's identities with an open WhatsApp 24-hour window: the rest get SMS.
DEMO_WHATSAPP_WINDOW_SHARE = 0.6


def find_sample_data() -> Path:
    """``./sample_data`` when run from a checkout, else the one beside the package."""
    for candidate in (Path.cwd() / "sample_data", PACKAGE_ROOT / "sample_data"):
        if (candidate / "text_campaign.toml").exists():
            return candidate
    raise InputFileError(
        "sample_data/ not found: run the demo from the project's directory or pass --campaign"
    )


def demo_config(database: Path) -> Config:
    return Config(
        sinch=SinchConfig(
            project_id=SANDBOX_PROJECT_ID,
            app_id=SANDBOX_APP_ID,
            key_id=SANDBOX_KEY_ID,
            key_secret=Secret(SANDBOX_KEY_SECRET),
            webhook_secret=Secret(SANDBOX_WEBHOOK_SECRET),
            sandbox=True,
        ),
        database=DatabaseConfig(url=f"sqlite:///{database}"),
        # About 1% of numbers are unreachable, so the report shows failures with a reason; about
        # 40% have no open WhatsApp 24-hour window, so a free-form WhatsApp message to them
        # falls back to SMS (OUTSIDE_ALLOWED_SENDING_WINDOW) when the campaign names both.
        sandbox=SandboxConfig(
            latency_ms=40.0,
            jitter_ms=20.0,
            fail_pattern=r"[0-9]*(13|77)$",
            delivered_delay=1.0,
            whatsapp_window_share=DEMO_WHATSAPP_WINDOW_SHARE,
        ),
    )


def fresh_database(output_dir: Path) -> Path:
    """Every demo starts from scratch: an empty database file in ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for leftover in output_dir.glob("demo.db*"):
        leftover.unlink()
    return (output_dir / "demo.db").resolve()


async def run_demo(
    *,
    output_dir: Path,
    campaign_file: Path | None,
    stop: asyncio.Event,
    display: ProgressDisplay,
) -> int:
    campaign_file = campaign_file or find_sample_data() / "text_campaign.toml"
    database = await asyncio.to_thread(fresh_database, output_dir)
    config = demo_config(database)
    display.console.print(
        f"[bold]campaign demo[/bold]: {campaign_file} against the built-in Sinch sandbox "
        f"({config.sandbox.latency_ms:.0f}±{config.sandbox.jitter_ms:.0f} ms latency, "
        f"{config.sending.requests_per_second:,.0f} requests/s)"
    )
    options = run.RunOptions(campaign_file=campaign_file, mode="individual", wait_for_delivery=60.0)
    code = await run.run(config, options, stop=stop, display=display)
    if code == EXIT_INTERRUPTED:
        return code
    spec = run.prepare_spec(options)
    report = output_dir / "report.csv"
    async with open_resources(dataclasses.replace(config), sinch=False) as resources:
        store = resources.need_store()
        campaign = await store.campaigns.find(spec.name)
        assert campaign is not None
        rows = await reporting.export(store.export.pages(campaign.id), report)
    display.console.print(f"report: {report} ({rows:,} rows, one per input row)")
    display.console.print(
        f"database: {database}  (try: campaign status --database sqlite:///{database})"
    )
    return 0
