"""The retention domain: declarative cleanup policies over app tables, data files and the Dagster instance."""
