"""Pre-training: data decoding and mixtures, offline tokenization, the training loop, `run.py`."""
