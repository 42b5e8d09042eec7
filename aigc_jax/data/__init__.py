"""Datasets: TFDS builders for the embedded data, catalog adapters, deterministic batch samplers."""
