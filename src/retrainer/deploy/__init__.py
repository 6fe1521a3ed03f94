"""Deploy layer: ship a model version to where it runs (Python artifact, C for an MCU)."""
