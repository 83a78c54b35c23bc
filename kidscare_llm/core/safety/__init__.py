"""Child safety: normalisation, lexicon rules, similarity, the learned stage and the checker."""
