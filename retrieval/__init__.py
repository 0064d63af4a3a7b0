"""Embedding collections (`vlm2vec embed`) and searching them (`vlm2vec search`)."""
