"""Contrastive training of VLM2Vec models with the sentence-transformers trainer (see the training issue)."""
