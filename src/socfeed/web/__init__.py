"""The web app: the SOC feed, rule pages, coverage, sources and the JSON API."""

from socfeed.web.app import create_app

__all__ = ["create_app"]
