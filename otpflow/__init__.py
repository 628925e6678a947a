"""otpflow package."""
