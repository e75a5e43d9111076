"""Coding-agent adapters."""
