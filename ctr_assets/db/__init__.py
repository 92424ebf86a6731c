"""The application database: connection, embedded server, schema migrations and queries."""
