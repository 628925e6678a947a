"""Configuration: one typed settings object from the environment, the Redis client factory, logging set-up."""
from config.settings import ConfigError, Settings

__all__ = ["ConfigError", "Settings"]
