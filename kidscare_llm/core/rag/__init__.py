"""Retrieval: documents, Korean analysis (Kiwi), BM25, dense embedders, Chroma, fused search."""
