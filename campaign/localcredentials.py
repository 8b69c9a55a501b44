"""The well-known credentials of the local Sinch sandbox.

Shared, not owned: the sandbox accepts them unless told otherwise
(:class:`campaign.sandbox.settings.SandboxSettings`), and the config presents them when
``[sinch] sandbox = true`` and the environment is silent (:mod:`campaign.config`). Neither
imports the other; both import this.
"""

from __future__ import annotations

from typing import Final

PROJECT_ID: Final = "sandbox-project"
APP_ID: Final = "sandbox-app"
KEY_ID: Final = "sandbox-key"
KEY_SECRET: Final = "sandbox-secret"
WEBHOOK_SECRET: Final = "sandbox-webhook-secret"
