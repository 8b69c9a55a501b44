"""All SQL lives here: tables, engine, migrations and the repository."""
