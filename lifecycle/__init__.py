"""The domain: activation and rent orders, the webhook inbox, the outbox of events, deadlines.

No Flask, no Celery, no application settings: each flow takes a small config of its own (``*.config``), and
every Redis key comes from :class:`lifecycle.keys.Keys`. The orchestration that calls the provider and then
makes one transition lives in ``flows``; docs/architecture.md has the map.
"""
