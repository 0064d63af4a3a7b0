"""vlm2vec-hf: VLM2Vec universal multimodal embedding models for transformers, sentence-transformers and the Hub.

The parts live in the repository's root folders and install as sub-packages of this one name:
`vlm2vec_hf.modeling_vlm2vec`, `vlm2vec_hf.st_module`, `vlm2vec_hf.training`, `vlm2vec_hf.evaluation`,
`vlm2vec_hf.hub_cards`.
"""

from pathlib import Path as _Path

# Running from a source checkout that is not installed: the sub-packages are the sibling root folders.
_checkout_root = _Path(__file__).resolve().parent.parent
if not (_Path(__file__).parent / "modeling_vlm2vec").is_dir() and (_checkout_root / "modeling_vlm2vec").is_dir():
    __path__.append(str(_checkout_root))  # noqa: F821  (module __path__)

__version__ = "0.1.0"
