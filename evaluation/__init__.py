"""MMEB evaluation of VLM2Vec models as sentence-transformers evaluators (see the evaluation issue)."""
