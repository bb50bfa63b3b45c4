"""Capabilities: each module declares a Router and returns actions; ROUTERS is the dispatch order."""

from handlers import faq, groups, lifecycle, sop, tagging, timeline, welcome

ROUTERS = (
    welcome.router,
    timeline.router,
    faq.router,
    tagging.router,
    lifecycle.router,
    sop.router,
    groups.router,
)
