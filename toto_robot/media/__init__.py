"""Reading media for every stage that needs pixels from files: pre-training (pretrain/) and the
probes (encoder/probes). Here, below both, so neither imports the other (docs/design.md, import rules):
decoding videos (video.py), images (images.py), clip sampling (clips.py), and bad-file handling (errors.py)."""
