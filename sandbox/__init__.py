"""sandbox: a stand-alone emulator of an SMS-Activate-compatible provider (handler_api.php).

It imports nothing of otpflow, so tests of our client against it are tests against an independent peer.
"""
from .app import create_app, engine_of
from .config import SandboxConfig

__all__ = ["create_app", "engine_of", "SandboxConfig"]
