"""The sentence-transformers side of a VLM2Vec model.

`vlm2vec_st.py` is copied verbatim to the root of every VLM2Vec model repository (sentence-transformers loads it
from there with `trust_remote_code=True`); `prompts.py` reads the MMEB instructions (`mmeb_instructions.csv`) that
are saved into each model's `config_sentence_transformers.json` under mteb's task names.
"""

from .prompts import MMEB_INSTRUCTIONS, MTEB_PROMPT_NAMES, default_prompts
from .vlm2vec_st import VLM2VecEncoder, split_input

MODULE_FILE = "vlm2vec_st.py"
MODULE_TYPE = "vlm2vec_st.VLM2VecEncoder"

__all__ = [
    "MMEB_INSTRUCTIONS",
    "MODULE_FILE",
    "MODULE_TYPE",
    "MTEB_PROMPT_NAMES",
    "VLM2VecEncoder",
    "default_prompts",
    "split_input",
]
