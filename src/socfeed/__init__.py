"""socfeed: public detection and hunting rules, normalized, enriched and served as one feed."""

__version__ = "0.1.0"
