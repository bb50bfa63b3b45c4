"""Capabilities: each module declares a Router and returns actions."""
