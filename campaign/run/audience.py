"""Whether the app can take the campaign's recipients as the campaign names them: checked
before anything is written or sent, from the preflight's reading of the app."""

from __future__ import annotations

from campaign import errors
from campaign.campaignfile import CampaignSpec
from campaign.models import Channel
from campaign.sinch.client import AppInfo

# Sinch's processing mode in which an app has contacts and conversations; in DISPATCH mode (the
# default for a new app) a request must name the recipient's channel identities.
CONVERSATION_MODE = "CONVERSATION"


def check_app(spec: CampaignSpec, app: AppInfo | None) -> None:
    """Refuse (exit 2) a campaign by contact ID for an app that Sinch says is not in
    CONVERSATION mode: every request would be refused. An app not read (None) or one that
    does not say is let through: Sinch's answer to the sends then decides."""
    if spec.channel is not Channel.CONTACT_ID or app is None or app.processing_mode is None:
        return
    if app.processing_mode != CONVERSATION_MODE:
        raise errors.ConfigError(
            f"the campaign names its recipients by Sinch contact ID ('contact_id_column'), "
            f"which Sinch accepts only for an app in CONVERSATION mode; app {app.app_id!r} is "
            f"in {app.processing_mode} mode: nothing was sent (switch the app to CONVERSATION "
            "mode, or send to channel identities with 'channel' and 'identity_column')"
        )
