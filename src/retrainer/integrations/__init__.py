"""Optional bridges to the tools a team already runs: MLflow, object storage, SQL sources."""
