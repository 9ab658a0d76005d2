"""Sahara vaults: content-addressed, encrypted storage for AI assets."""
