"""`python -m sandbox --port N --api-key K --webhook-url U [--auto-sms-after S] [--dialect D] [--server S]`
(gunicorn with HTTP/1.1 keep-alive by default; see sandbox/cli.py)."""
import sys

from .cli import main

sys.exit(main())
