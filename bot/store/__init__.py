"""SQL storage: models, engine, migrations and named queries."""
