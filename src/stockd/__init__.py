"""stockd: an inventory service that never oversells."""

__version__ = "0.1.0"
