"""Pixels to features: tokenizers, the Toto transformer and (later) the frozen encoder.

Submodules are imported explicitly (`from encoder.model import Toto`) so `import encoder` stays light.
"""
