"""Counters of worker processes: counted in memory, flushed to Redis, read back by the web ``/metrics``."""
