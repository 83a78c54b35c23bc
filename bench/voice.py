"""Voice figures: STT and TTS real-time factors, and end of speech -> first audio, streamed.

All with the packaged models on this CPU, in one run:
  1. STT RTF: the embedded whisper-base (int8, greedy, Silero VAD) over piper-spoken English
     utterances and an espeak-ng Korean one, as the STT node runs it (VAD then whisper);
  2. TTS RTF: piper (the embedded English voice) and espeak-ng (Korean) synthesis time over
     the audio's duration;
  3. latency from the end of a child's speech to the first audio sample of the reply, with a
     real chat node process (packaged SmolLM2-135M GGUF, default parameters, greedy, RAG off)
     over loopback DDS: the utterance is fed at speaking pace through the streaming VAD,
     transcribed, published on /user_utterance, and spoken by the TTS core either
       streamed: each /robot_reply_partial sentence queued as it arrives (the TTS node), or
       baseline: nothing spoken until /robot_reply holds the whole reply, which is then
         spoken by the same TTS core as one message (the TTS node fed /robot_reply), or
       baseline per sentence (stricter): the whole reply, then queued sentence by sentence
         so synthesis of the second overlaps playback of the first;
     alternating, medians over --runs trials each; the ratios streamed/baseline are printed
     (once its first sound is out, a streamed reply is cancelled to save time).
Last line: one JSON object (stt_rtf, tts_rtf, first_audio_ratio, ...).

  .venv/bin/python bench/voice.py [--runs 3]
"""

import argparse
from collections import Counter
import os
from pathlib import Path
import statistics
import tempfile
import threading
import time

import harness
import numpy as np

from kidscare_llm.core.voice.audio import Player, resample, STT_RATE
from kidscare_llm.core.voice.stt import Segmenter, Transcriber, VadSettings
from kidscare_llm.core.voice.tts import Speaker, Synthesizer

CHILD = 'Can you tell me a story about a brave little lion?'
STT_SENTENCES = ['Can you tell me a story about a brave little lion?',
                 'I drew a big red dinosaur at kindergarten today.',
                 'My dog Choco wants to go for a walk in the park.']
TTS_SENTENCES = ['Once upon a time, a brave little lion lived near a big river.',
                 'Every morning he walked to the water to say hello to his friends.',
                 'One day a rabbit asked him for help.',
                 'Of course, said the lion, and off they went together.']
KOREAN = '안녕 라이언! 오늘 유치원에서 재미있었어?'
CHAT = {'llm.temperature': 0, 'rag.enabled': False, 'model.download': False}


def silence(seconds):
    """Silence at the STT rate."""
    return np.zeros(int(seconds * STT_RATE), np.float32)


def to_stt(audio, rate):
    """Resample synthesised speech to 16 kHz, as a microphone would capture it."""
    return resample(audio, rate, STT_RATE)


def stt_rtf(transcriber, clips, runs):
    """Median over runs of (VAD + transcription time) / audio duration, warm model."""
    audio = np.concatenate([np.concatenate([silence(0.4), c, silence(0.8)]) for c in clips])
    transcriber.utterances(audio)  # warm-up
    ratios, texts = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        texts = transcriber.utterances(audio)
        ratios.append((time.perf_counter() - t0) / (len(audio) / STT_RATE))
    return statistics.median(ratios), [u.text for u in texts]


def tts_rtf(synth, sentences, runs):
    """Median over runs of synthesis time / audio duration, warm engine."""
    synth.synthesize(sentences[0])  # warm-up
    ratios = []
    for _ in range(runs):
        spent = seconds = 0.0
        for s in sentences:
            t0 = time.perf_counter()
            audio, rate, _ = synth.synthesize(s)
            spent += time.perf_counter() - t0
            seconds += len(audio) / rate
        ratios.append(spent / seconds)
    return statistics.median(ratios)


class Conversation:
    """The child, the STT core, a real chat node over DDS, and the TTS core, in one place."""

    def __init__(self, transcriber, synth, vad, env):
        self.transcriber = transcriber
        self.speaker = Speaker(synth, Player(sound_card=False), None,
                               on_speaking=self._on_speaking)
        self.node = harness.NodeClient(env, 'voice_bench', on_partial=self._on_partial,
                                       on_reply=self._on_reply)
        self.trials = 0
        self.kinds = Counter()  # what the chat node answered: reply, safety, busy, ...
        self.segmenter = Segmenter(self._on_speech, vad)  # as the STT node runs it
        self.mode = 'streamed'
        self.sentences = []
        self.first_audio = None
        self.heard = ''
        self.marks = {}
        self.active = False
        self.done = threading.Event()
        self.reply_text = None

    def _on_speech(self, audio, started):
        self.heard = self.transcriber.transcribe(audio)
        self.marks.setdefault('published', time.time())
        self.node.say(self.heard)

    def _on_partial(self, text):
        if not self.active:  # the tail of a cancelled reply
            return
        self.marks.setdefault('first_sentence', time.time())
        self.sentences.append(text)
        if self.mode == 'streamed':
            self.speaker.say(text)

    def _on_reply(self, text):
        self.marks.setdefault('reply', time.time())
        self.reply_text = text
        if self.active and self.mode == 'whole':
            self.speaker.say(text)
        elif self.active and self.mode == 'sentences':
            for sentence in self.sentences:
                self.speaker.say(sentence)
        self.done.set()

    def _on_speaking(self, on):
        if on and self.first_audio is None and self.active:
            self.first_audio = time.time()
            self.active = False

    def trial(self, audio, speech_end_s, mode):
        """Speak audio at real pace; return the latency to the first sample of the reply.

        Returns (seconds from the end of speech to the first sample, characters of the reply,
        marks), or None when no audio came within 180 s.
        """
        self.trials += 1  # a new user for every trial: a fresh session, the same history
        self.node.switch(f'bench{self.trials}')  # and let it land before the utterance
        self.mode, self.sentences, self.first_audio, self.marks = mode, [], None, {}
        self.reply_text = None
        self.done.clear()
        self.active = True
        step = STT_RATE // 10
        t0 = time.time()
        for i in range(0, len(audio), step):
            self.segmenter.feed(audio[i:i + step])
            time.sleep(max(0.0, t0 + (i + step) / STT_RATE - time.time()))
        speech_end = t0 + speech_end_s
        deadline = time.time() + 180
        while self.first_audio is None and time.time() < deadline:
            time.sleep(0.01)
        self.speaker.stop()
        if mode == 'streamed' and not self.done.is_set():  # measured: cut the rest (barge-in)
            self.node.cancel(5)  # no answer within 5 s: the reply ends by itself anyway
        self.done.wait(max(1.0, deadline - time.time()))
        self.active = False
        self.kinds[self.node.classify(self.reply_text)] += 1  # timeout: no reply at all
        if self.first_audio is None:
            print(f'  {mode}: no audio within 180 s (heard {self.heard!r}; reply '
                  f'{"in" if self.done.is_set() else "not in"}); not counted', flush=True)
            return None
        marks = sorted(self.marks.items(), key=lambda kv: kv[1])
        steps = {k: round(v - speech_end, 2) for k, v in marks}
        print(f'  {mode}: first audio '
              f'{self.first_audio - speech_end:.2f} s after the end of speech; {steps}',
              flush=True)
        return self.first_audio - speech_end, len(' '.join(self.sentences)), self.marks


def main(argv=None):
    """Run the three measurements and print the JSON summary last."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=3, help='trials per figure (3)')
    args = parser.parse_args(argv)
    runs = max(1, args.runs)
    data = Path(tempfile.mkdtemp(prefix='voice-bench-'))
    os.environ['KIDSCARE_DATA_DIR'] = str(data)
    synth = Synthesizer()
    vad = VadSettings()
    en = Transcriber(language='en', cache_dir=data / 'models', vad=vad)
    ko = Transcriber(language='ko', cache_dir=data / 'models', vad=vad)
    print(f'STT: {en.describe()}; VAD silence {vad.min_silence_ms} ms')
    clips = [to_stt(*synth.synthesize(s)[:2]) for s in STT_SENTENCES]
    rtf_en, heard = stt_rtf(en, clips, runs)
    print(f'STT RTF (English, piper speech): {rtf_en:.3f}  heard: {heard}')
    rtf_ko, heard_ko = stt_rtf(ko, [to_stt(*synth.synthesize(KOREAN)[:2])], runs)
    print(f'STT RTF (Korean, espeak-ng speech): {rtf_ko:.3f}  heard: {heard_ko}')
    tts_en = tts_rtf(synth, TTS_SENTENCES, runs)
    tts_ko = tts_rtf(synth, [KOREAN, '오늘은 날씨가 맑아요.', '같이 책을 읽을까?'], runs)
    print(f'TTS RTF: piper (English) {tts_en:.3f}, espeak-ng (Korean) {tts_ko:.3f}')

    env = harness.loopback_env()
    chat = harness.start_node('chat', CHAT, env, data, timeout=300)
    talk = None
    got = {'streamed': [], 'whole': [], 'sentences': []}
    chars = missed = 0
    try:
        talk = Conversation(en, synth, vad, env)
        talk.node.wait(120)
        child = np.concatenate([silence(0.5), clips[0], silence(1.5)])
        speech_end = 0.5 + len(clips[0]) / STT_RATE
        talk.trial(child, speech_end, 'streamed')  # warm-up: first reply, caches
        for _ in range(runs):
            for mode in got:
                result = talk.trial(child, speech_end, mode)
                if result is None:
                    missed += 1
                    continue
                got[mode].append(result[0])
                chars = max(chars, result[1])
    finally:
        if talk is not None:
            talk.speaker.close()
            talk.node.close()
        harness.stop(chat, timeout=30)
    s, b, b2 = (statistics.median(got[m]) if got[m] else None
                for m in ('streamed', 'whole', 'sentences'))
    ratio = round(s / b, 3) if s is not None and b else None
    ratio2 = round(s / b2, 3) if s is not None and b2 else None
    print(f'child said {CHILD!r}, STT heard {talk.heard!r}; reply {chars} characters; '
          f'replies {dict(talk.kinds)}')
    print('end of speech -> first audio, medians: '
          f'streamed {_round(s)} s {[round(x, 2) for x in got["streamed"]]}; '
          f'baseline (whole reply first) {_round(b)} s {[round(x, 2) for x in got["whole"]]}; '
          f'baseline per sentence {_round(b2)} s {[round(x, 2) for x in got["sentences"]]}')
    print(f'ratio streamed/baseline {ratio}; streamed/baseline per sentence {ratio2}'
          + (f'; {missed} trials without audio not counted (see {chat.log})' if missed else ''))
    harness.emit({'stt_rtf': round(rtf_en, 3), 'stt_rtf_ko': round(rtf_ko, 3),
                  'tts_rtf': round(tts_en, 3), 'tts_rtf_ko': round(tts_ko, 3),
                  'first_audio_streamed_s': _round(s), 'first_audio_baseline_s': _round(b),
                  'first_audio_ratio': ratio, 'first_audio_baseline_sentences_s': _round(b2),
                  'first_audio_ratio_sentences': ratio2, 'runs': runs,
                  'trials_without_audio': missed, 'reply_kinds': dict(talk.kinds)})
    return 0 if all(got.values()) else 1


def _round(seconds):
    return None if seconds is None else round(seconds, 3)


if __name__ == '__main__':
    harness.run(main)
