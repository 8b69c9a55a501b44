"""``campaign preview CAMPAIGN.toml``: the first rows rendered, and what each channel makes of
them, before a campaign is run.

The rows go through the loader's checks, so a preview shows rows that a run would send; each
is rendered as the run renders it, then transcoded by Sinch (``messages:transcode``, nothing
sent) for each channel the campaign may use: its own, and those of ``channel_priority_order``.
An SMS is measured as it is billed, in parts (:mod:`campaign.segments`). Nothing is written:
the database is not opened.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaign import campaignfile, errors, rendering, segments
from campaign.config import Config
from campaign.models import SINCH_CHANNELS, Channel
from campaign.resources import open_resources
from campaign.run.load import open_source
from campaign.sinch import transcode

DEFAULT_ROWS = 3
_SLICE_ROWS = 1_000  # a preview wants a few rows: read no more of a big file than that


@dataclass(frozen=True)
class PreviewRow:
    """One recipient row as a run would send it."""

    row: int
    identity: str
    parameters: dict[str, str]
    message: dict[str, Any]


@dataclass
class ChannelForm:
    """A row's message on one channel: Sinch's form, the text read in it, and its size."""

    channel: str
    form: str
    text: str | None  # None: no one text in the form (a carousel, an image)
    sms: segments.SmsLength | None = None

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"form": self.form, "text": self.text}
        if self.text is not None:
            found["characters"] = len(self.text)
        if self.sms is not None:
            found |= {"encoding": self.sms.encoding.value, "segments": self.sms.parts}
        return found


@dataclass
class RowPreview:
    row: PreviewRow
    forms: list[ChannelForm] = field(default_factory=list)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``campaign preview``."""
    preview = sub.add_parser(
        "preview",
        parents=[common],
        help="show the first rows rendered, as each channel would carry them",
        description="Render the first valid rows of the campaign's recipients file and show "
        "each channel's form of the message through Sinch's messages:transcode, with its "
        "length (for SMS: the encoding and the number of parts billed). Nothing is written "
        "or sent.",
    )
    preview.add_argument("campaign_file", type=Path, metavar="CAMPAIGN.toml")
    preview.add_argument(
        "--rows", type=_positive, default=DEFAULT_ROWS, metavar="N", help="rows to show (3)"
    )
    preview.add_argument(
        "--channel",
        action="append",
        dest="channels",
        choices=[c.value for c in SINCH_CHANNELS],
        metavar="CH",
        help="a channel to show (repeatable; default: the campaign's channel and its "
        "channel_priority_order)",
    )
    preview.add_argument("--json", action="store_true", help="print JSON instead of text")
    preview.set_defaults(handler=preview_campaign, needs_config=True, needs_sinch=True)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


async def preview_campaign(args: argparse.Namespace, config: Config | None) -> int:
    """The handler: rows from the file (in a worker thread), their forms from Sinch."""
    assert config is not None
    spec = campaignfile.load(args.campaign_file)
    channels = args.channels or campaign_channels(spec)
    rows = await asyncio.to_thread(first_rows, spec, args.rows)
    if config.sinch.sandbox and not args.json:
        print("campaign: note: the built-in sandbox transcodes these forms", file=sys.stderr)
    sender = spec.send.get("channel_properties", {}).get("SMS_SENDER")
    async with open_resources(config, store=False) as resources:
        client = resources.need_client()
        previews = []
        for row in rows:  # one request a row, in turn: a preview is a few rows
            forms = await transcode.transcode(client, row.message, channels, sender=sender)
            previews.append(RowPreview(row, _forms(forms)))
    if args.json:
        print(json.dumps(_as_json(spec, channels, previews), ensure_ascii=False, indent=2))
    else:
        for line in text_lines(spec, channels, previews):
            print(line)
    return errors.EXIT_OK


def campaign_channels(spec: campaignfile.CampaignSpec) -> list[str]:
    """The channels the campaign may send on: its own (the first choice, then its
    ``[identities]``), then its ``channel_priority_order``."""
    order = spec.send.get("channel_priority_order") or []
    own = [] if spec.channel is Channel.CONTACT_ID else [c.value for c in spec.channels]
    channels = list(dict.fromkeys([*own, *order]))
    if not channels:
        raise errors.ConfigError(
            f"{spec.name}: the campaign names no channel (contact IDs without "
            "channel_priority_order): give one with --channel"
        )
    return channels


def first_rows(spec: campaignfile.CampaignSpec, count: int) -> list[PreviewRow]:
    """The first ``count`` rows that a run would send (valid, an identity's first), rendered.
    Blocking: reads the file."""
    template = rendering.MessageTemplate.compile(spec.message)
    return list(itertools.islice(_valid_rows(spec, template), count))


def _valid_rows(
    spec: campaignfile.CampaignSpec, template: rendering.MessageTemplate
) -> Iterator[PreviewRow]:
    seen: set[str] = set()
    for frame in open_source(spec).slices(_SLICE_ROWS):
        valid = frame.filter(frame["reason"].is_null())
        for row, identity, parameters in valid.select("row", "identity", "parameters").iter_rows():
            if identity in seen:
                continue
            seen.add(identity)
            params = json.loads(parameters)
            yield PreviewRow(int(row), identity, params, template.render(params))


def _forms(transcoded: dict[str, str]) -> list[ChannelForm]:
    forms = []
    for channel, form in transcoded.items():
        text = transcode.text_of(form)
        if channel == Channel.SMS.value and text is None:
            text = form  # an SMS is text: whatever Sinch answered is what would be sent
        sms = segments.measure(text) if channel == Channel.SMS.value and text is not None else None
        forms.append(ChannelForm(channel, form, text, sms))
    return forms


def text_lines(
    spec: campaignfile.CampaignSpec, channels: list[str], previews: list[RowPreview]
) -> Iterator[str]:
    """The preview as text: each row, then each channel's size and form."""
    yield f"campaign      {spec.name} ({spec.mode}, {spec.channel.value})"
    yield f"recipients    {spec.recipients}"
    yield f"channels      {', '.join(channels)}"
    if not previews:
        yield "no valid rows"
    for preview in previews:
        row = preview.row
        yield ""
        yield f"row {row.row}  {row.identity}  {json.dumps(row.parameters, ensure_ascii=False)}"
        for form in preview.forms:
            yield f"  {form.channel:<12}{_size(form)}"
            plain = form.channel in ("SMS", "MMS") and form.text is not None
            shown = form.text if plain and form.text is not None else form.form
            for line in shown.splitlines() or [""]:
                yield f"    {line}"
    yield ""
    yield "preview: nothing was written or sent"


def _size(form: ChannelForm) -> str:
    if form.text is None:
        return f"no text: a form of {len(form.form):,} characters"
    size = f"{len(form.text):,} characters"
    if form.sms is None:
        return size
    parts = form.sms.parts
    return f"{size}, {form.sms.encoding.value}, {parts} segment{'s' if parts != 1 else ''}"


def _as_json(
    spec: campaignfile.CampaignSpec, channels: list[str], previews: list[RowPreview]
) -> dict[str, Any]:
    return {
        "campaign": spec.name,
        "channels": channels,
        "rows": [
            {
                "row": p.row.row,
                "identity": p.row.identity,
                "parameters": p.row.parameters,
                "message": p.row.message,
                "channels": {form.channel: form.as_json() for form in p.forms},
            }
            for p in previews
        ],
    }
