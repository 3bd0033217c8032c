"""The HTTP API of API.md: Litestar, msgspec structs, RFC 9457 problem documents."""
