"""kidscare_llm: an on-device, Korean-first, multi-turn RAG chatbot for service robots."""

__version__ = '0.1.0'
