"""Tokenizers: pixels -> tokens behind one interface (`Tokenizer`), built from a spec string.

    fsq    our trainable FSQ autoencoder, 8,192 codes; tokenizer=fsq_stable: 15,360 (fsq.py; trained by pretrain/train_tokenizer.py)
    dalle  the official DALL-E dVAE encoder, 8192 codes, encoder only (dalle.py)
    patch  continuous 8x8x3 patches, invertible (patch.py)

Each kind is one entry of `registry.TOKENIZERS`. Token ids for the transformer
(special tokens + code offset) are defined in encoder/tokens.py.
"""
from encoder.tokenizers.base import Tokenizer
from encoder.tokenizers.registry import TOKENIZER_NAME, TOKENIZERS, load_tokenizer, save_tokenizer

__all__ = ["TOKENIZERS", "TOKENIZER_NAME", "Tokenizer", "load_tokenizer", "save_tokenizer"]
