"""Route handlers, one module per section of API.md. Each parses, calls the service, answers."""
