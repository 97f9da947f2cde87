"""Helpers for testing rayevolve and programs built on it (loopback servers)."""
