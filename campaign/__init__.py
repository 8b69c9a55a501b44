"""campaign: a high-volume batch campaign engine for the Sinch Conversation API."""

__version__ = "0.1.0"
