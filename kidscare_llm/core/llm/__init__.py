"""Language-model backends (llama.cpp in-process, OpenAI-compatible servers) and model files."""
