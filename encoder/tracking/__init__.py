"""Semi-supervised video object tracking by label propagation (paper section 4.5, Table 10): `python -m encoder.track`."""
