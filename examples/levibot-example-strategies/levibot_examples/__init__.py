"""Example LeviBot strategy plugins (Strategy API version 1)."""
