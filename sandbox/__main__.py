"""`python -m sandbox --port N --api-key K --webhook-url U [--auto-sms-after S] [--dialect D]`."""
import sys

from .cli import main

sys.exit(main())
