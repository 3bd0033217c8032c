"""Engines: the stock authority. Each decides commands atomically, in batches."""
