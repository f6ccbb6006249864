"""The whole feed as a static site that any static host or CDN can serve."""

from socfeed.site.build import DEFAULT_FEED_PAGES, SiteError, SiteReport, build_site
from socfeed.site.paths import rule_dir_name

__all__ = ["DEFAULT_FEED_PAGES", "SiteError", "SiteReport", "build_site", "rule_dir_name"]
