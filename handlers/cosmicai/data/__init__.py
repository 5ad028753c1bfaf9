"""Data preparation and training: synthetic SDSS-like galaxies, cleaning, re-sharding, fine-tuning."""
