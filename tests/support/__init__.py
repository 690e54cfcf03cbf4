"""Fixtures shared by test folders (registered in tests/conftest.py)."""
