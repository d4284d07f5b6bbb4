"""Raw data: video/image decoding, clip sampling, source mixtures, the embedded default corpus."""
