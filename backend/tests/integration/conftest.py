"""Fixtures shared with the other suites live in backend/tests/conftest.py."""
