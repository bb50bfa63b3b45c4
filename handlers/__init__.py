"""Capabilities: each module declares a Router and returns actions; ROUTERS is the dispatch order."""

from handlers import faq, tagging, timeline

ROUTERS = (timeline.router, faq.router, tagging.router)
