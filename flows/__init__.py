"""The orchestration: a provider call, then one transition.

Plain functions of a :class:`~flows.runtime.Runtime` (no Celery here, so tests call them directly); the Celery
tasks in ``tasks`` are wrappers of a few lines. Decisions come from ``lifecycle`` (pure functions), provider
calls go through the typed :class:`~flows.api.ProviderApi`, and every state change is one atomic transition of a
``lifecycle`` store. Whatever the provider says, an order either moves forward by a compare-and-set, or keeps
its state and gets its deadline re-armed (with backoff on outages): no order is left without a deadline until it
is terminal.
"""
