"""Capabilities: each module declares a Router and returns actions; ROUTERS is the dispatch order."""

from handlers import timeline

ROUTERS = (timeline.router,)
