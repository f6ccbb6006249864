"""Source fetching and file discovery: Git clones, local folders, a mirror or the shipped sample."""

from __future__ import annotations

from socfeed.sources.checkout import Checkout, CheckoutMode
from socfeed.sources.fetch import fetch
from socfeed.sources.files import (
    MAX_FILE_BYTES,
    iter_context_files,
    iter_rule_files,
    read_source_file,
)
from socfeed.sources.links import original_url
from socfeed.sources.sample import sample_checkout, sample_root

__all__ = [
    "MAX_FILE_BYTES",
    "Checkout",
    "CheckoutMode",
    "fetch",
    "iter_context_files",
    "iter_rule_files",
    "original_url",
    "read_source_file",
    "sample_checkout",
    "sample_root",
]
