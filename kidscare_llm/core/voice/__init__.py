"""Voice: audio I/O, speech-to-text (faster-whisper + VAD), text-to-speech (piper, espeak-ng)."""
