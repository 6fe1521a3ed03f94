"""Data in: reading tables (io), the data contract (schema), periods and command-line intake."""
