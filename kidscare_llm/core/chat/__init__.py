"""The conversation: engine, prompt budget, per-child sessions, persona, sentence streaming."""
