"""The sentence-transformers side of a VLM2Vec model.

`vlm2vec_st.py` is copied verbatim to the root of every VLM2Vec model repository (sentence-transformers loads it
from there with `trust_remote_code=True`); `prompts.py` holds the MMEB instructions that are saved, as data, into
each model's `config_sentence_transformers.json`.
"""

from .prompts import MMEB_INSTRUCTIONS, default_prompts
from .vlm2vec_st import VLM2VecEncoder, split_input

MODULE_FILE = "vlm2vec_st.py"
MODULE_TYPE = "vlm2vec_st.VLM2VecEncoder"

__all__ = ["MMEB_INSTRUCTIONS", "MODULE_FILE", "MODULE_TYPE", "VLM2VecEncoder", "default_prompts", "split_input"]
