"""Capabilities: each module declares a Router and returns actions; ROUTERS is the dispatch order."""

from handlers import faq, timeline

ROUTERS = (timeline.router, faq.router)
