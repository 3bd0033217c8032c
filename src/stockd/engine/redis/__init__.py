"""The Redis engine: Redis decides and keeps the counters, a stream carries every change to PostgreSQL."""
