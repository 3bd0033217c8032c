"""Background workers that run inside the service."""
