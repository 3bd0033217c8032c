"""The durable record: schema, migrations, and the queries that read and write it."""
