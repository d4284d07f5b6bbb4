"""Probes of the frozen Toto encoder: image and video classification, every layer, three heads.

    data     datasets (embedded digits and sim-robot clips, ImageFolder, Kinetics-style CSV)
    heads    linear (average-pooled), attention (paper Table 5) and attention+MLP heads
    train    feature extraction once per dataset for all layers, cached; probe training
    report   results.json entries and the accuracy-vs-layer plot (paper Fig. 4)
    run      `run_probes(ProbeConfig)`, what `python -m encoder.probe` calls
    config   the structured hydra config (ProbeConfig) and its ConfigStore entry
"""
