"""Reading media for every stage that needs pixels from files: pre-training (pretrain/), the
probes (encoder/probes) and tracking (encoder/tracking, sim/segmentation). Here, below them all, so none
imports another (docs/design.md, import rules): decoding videos (video.py), images (images.py), clip
sampling (clips.py), bad-file handling (errors.py), and DAVIS-2017 folders with palette masks (davis.py)."""
