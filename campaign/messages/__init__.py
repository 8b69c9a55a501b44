"""What a Conversation API message must look like: knowledge the product and the sandbox share.

Neither side owns it. The campaign file parser checks a campaign's ``[message]`` with it before
anything is sent; the sandbox checks every request with it, as Sinch's synchronous 400 would.

- :mod:`campaign.messages.channels`: the channel names the Conversation API knows.
- :mod:`campaign.messages.violations`: the collector of ``(field, description)`` violations and
  its small type checks.
- :mod:`campaign.messages.content`: the structural checks of an AppMessage.
- :mod:`campaign.messages.limits`: the longest text each channel takes.

The submodules are imported where used: this package imports none of them.
"""
