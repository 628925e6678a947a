"""The webhook inbox: stored webhooks (``stream``), their identity (``fingerprint``), early ones held for their
purchase (``held``), and the consumer that turns entries into transitions (``consumer``)."""
from .consumer import DrainReport, InboxConsumer, extract_code
from .fingerprint import ACTIVATION, KINDS, RENT, WebhookKind, activation_fingerprint, fingerprint, rent_fingerprint
from .held import HELD_MAX, HELD_TTL, HeldWebhooks
from .stream import AppendResult, Inbox, InboxConfig, InboxEntry, InboxError, InboxUnavailable

__all__ = ["ACTIVATION", "AppendResult", "DrainReport", "HELD_MAX", "HELD_TTL", "HeldWebhooks", "Inbox",
           "InboxConfig", "InboxConsumer", "InboxEntry", "InboxError", "InboxUnavailable", "KINDS", "RENT",
           "WebhookKind", "activation_fingerprint", "extract_code", "fingerprint", "rent_fingerprint"]
