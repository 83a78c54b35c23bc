"""Child safety: check the child's words, the model's sentences and retrieved passages.

Four cheap stages, Korean first (config/safety/*.yaml, editable by operators):

1. normalise.py: NFKC, zero-width characters, case, leetspeak, separators and spaces inside
   words ("죽 고 싶 어", "자.살"), repeated characters, jamo typed one by one ("ㅈㅏㅅㅏㄹ")
   and common 초성 slang ("ㅅㅂ"); then policy.yaml's rewrite rules (dialect, spoken forms).
2. lexicon.py, per category: phrases, whole words, regexes, Kiwi morpheme sequences and 초성
   slang, with an allow list of everyday phrases. Mentioning a topic is not risk: topic words
   count on input only with a risk marker (the child's intent, wish, request, action or
   disclosure), and context rules quiet some categories (policy.py; never self-harm or abuse).
3. similarity.py (child's words only): TF-IDF cosine against risky and benign exemplars.
4. classifier.py (child's words only): a linear model trained once on data/safety/train and
   cached, over n-grams and (given the robot's embedder) the utterance's e5 embedding, which
   retrieval reuses; it flags what the stages above miss when P(not benign) >= its threshold.

No neural model of its own (the embedding is retrieval's): the whole check costs a millisecond
or two including one Kiwi call (~0.2 ms), so it runs on every generated sentence, where it
reads no embedding (bench/safety.py measures it). analysis.py
reads a text once for all stages; conversation.py holds the patterns over several turns.
"""

from dataclasses import replace
import json
from pathlib import Path
import threading
from typing import Dict, Optional, Set, Tuple
import unicodedata

from kidscare_llm.core.paths import cache_dir
from kidscare_llm.core.rag.korean import KoreanAnalyzer
from kidscare_llm.core.safety.analysis import TextAnalysis
from kidscare_llm.core.safety.classifier import SafetyClassifier
from kidscare_llm.core.safety.conversation import ConversationMonitor
from kidscare_llm.core.safety.learned import overrules, refiles
from kidscare_llm.core.safety.lexicon import CategoryRules, strings
from kidscare_llm.core.safety.normalise import compact, normalise
from kidscare_llm.core.safety.policy import default_safety_dir, found, read_yaml, SafetyPolicy
from kidscare_llm.core.safety.similarity import Exemplars
from kidscare_llm.core.safety.verdict import safe as _safe, Verdict

BENIGN_FILE = 'benign.yaml'  # everyday look-alike exemplars for the similarity stage
ALERT_EVIDENCE = ('self_harm', 'abuse')  # read under any category, they alert a caregiver


class SafetyChecker:
    """Checks the child's words, the model's sentences and retrieved passages.

    Long because the order of the stages is the policy: this class is the one place that runs
    them in order, lets a later stage overrule an earlier one, and explains every verdict.
    """

    def __init__(self, policy: SafetyPolicy, categories: Dict[str, CategoryRules],
                 exemplars: Exemplars, analyzer: Optional[KoreanAnalyzer] = None,
                 conversation: Optional[ConversationMonitor] = None, embedder=None):
        self.policy = policy
        self.embedder = embedder  # the robot's sentence embedder (shared with retrieval)
        self.categories = categories
        self.exemplars = exemplars
        self.analyse = TextAnalysis(policy, analyzer)
        self._clf: Optional[SafetyClassifier] = None
        self._lock = threading.Lock()
        self._clf_lock = threading.Lock()
        self._turn: Dict[str, int] = {}
        # patterns over a child's turns (conversation.py); the engine calls its watch()
        self.conversation = conversation or ConversationMonitor(None, self.standardise)
        self.judge = None  # judge.SafetyJudge when safety.judge is on: asked when unsure

    def probabilities(self, text: str) -> Dict[str, float]:
        """Return the learned stage's P(category) of a text ({} when it is off)."""
        return self._read(text, *self.analyse.spaced_and_morphs(text))

    def vector(self, text: str):
        """Return the text's sentence embedding when the learned stage reads one (else None)."""
        clf = self.classifier()
        return None if clf is None or clf.dense is None else self.embedder.query(text)

    def standardise(self, text: str) -> str:
        """Return a text normalised and standardised as the checks read it (no Kiwi)."""
        return self.policy.standardise(normalise(text))

    @classmethod
    def load(cls, config_dir: Optional[Path] = None, analyzer: Optional[KoreanAnalyzer] = None,
             embedder=None) -> 'SafetyChecker':
        """Load policy.yaml, benign.yaml and one YAML per category (None: the packaged ones).

        embedder: the robot's (rag.embedder); without one the learned stage reads n-grams only.

        Raises ConfigError naming the file and the fix for bad YAML, an unknown action, a
        category without its file, or an invalid pattern.
        """
        config_dir = Path(config_dir) if config_dir else default_safety_dir()
        policy = SafetyPolicy.read(config_dir)
        categories = {}
        for name in policy.priority:
            path = config_dir / f'{name}.yaml'
            categories[name] = CategoryRules.parse(name, read_yaml(path), path)
        path = config_dir / BENIGN_FILE
        benign = strings(read_yaml(path), 'exemplars', path) if path.is_file() else []
        exemplars = Exemplars.gather({n: categories[n].exemplars for n in policy.priority},
                                     benign)
        checker = cls(policy, categories, exemplars, analyzer, embedder=embedder)
        checker.conversation = ConversationMonitor.load(
            config_dir, checker.standardise, checker.probabilities,
            checker.analyse.spaced_and_morphs, checker.features_salt(), embedder,
            policy.classifier.examples)
        return checker

    def classifier(self) -> Optional[SafetyClassifier]:
        """Return the learned stage (trained on first use, then read from the cache)."""
        settings = self.policy.classifier
        if not settings.enabled:
            return None
        if self._clf is None:
            with self._clf_lock:
                if self._clf is None:
                    self._clf = SafetyClassifier.load_or_train(
                        settings.examples, self.analyse.spaced_and_morphs, settings.dims_log2,
                        settings.c, cache_dir(), self.features_salt(), self.embedder,
                        settings.embedding)
        return self._clf

    def features_salt(self) -> str:
        """Return what learned features depend on besides the lines: rewrites, Kiwi's version."""
        from kiwipiepy import __version__ as kiwi_version

        rewrite = {r.pattern: r.replacement for r in self.policy.rewrite}
        return json.dumps([rewrite, kiwi_version], ensure_ascii=False)

    def warm_up(self) -> 'SafetyChecker':
        """Load Kiwi, the exemplar index and the classifier now: the first check is not slow."""
        self.exemplars.index(self.analyse.tokens)
        self.classifier()
        if self.conversation.cue_model is not None:
            self.conversation.cue_model.model()
        if self.conversation.enabled:
            self.conversation.pattern_model()
        return self

    def _verdict(self, category: str, reason: str, stage: str, score: float = 0.0) -> Verdict:
        return Verdict(True, category, self.policy.actions[category],
                       self.policy.alerts[category], reason, stage, score)

    def _allowed(self, category: str, packed: str) -> bool:
        allow = self.categories[category].allow_re
        return allow is not None and allow.search(packed) is not None

    # -- the three checks

    def check_input(self, text: str, strict: bool = False) -> Verdict:
        """Check the child's words (before retrieval and generation).

        Mentioning a topic is not risk: a topic word, or a sentence of a mention category that
        only asks about or reports something, is flagged only with a risk marker (the child's
        intent, wish, request, action or disclosure). Self-harm and abuse are never quieted.
        strict (a caregiver's "stricter safety" switch for a child): a topic word is flagged
        without a risk marker, and the learned stage flags from its strict_threshold.
        """
        spaced, packed, morphs, jamo, tokens = self.analyse(text)
        if not packed:
            return _safe('input')
        policy = self.policy
        quiet, risk = policy.context(spaced, packed, morphs)
        if strict:
            risk = risk or 'strict'
        for name in policy.priority:
            if name in quiet:
                continue
            cat = self.categories[name]
            reason = cat.match(spaced, packed, morphs, jamo, self.analyse.morphs)
            if not reason and risk and cat.topic is not None:
                reason = cat.topic.match(spaced, packed, morphs, [], self.analyse.morphs)
                reason = f'topic {reason} + risk "{risk}"' if reason else ''
            if not reason:
                continue
            p = self._read(text, spaced, morphs)
            if overrules(policy.classifier, name, reason, p, len(spaced.split())):
                continue  # the model reads everyday talk (learned.py)
            peer = policy.peer_category
            if name in policy.peer_categories and peer in self.categories and \
                    peer not in quiet and policy.peers(spaced, packed):
                return self._escalate(self._verdict(
                    peer, f'{peer}: peers + {name}: {reason}', 'input'), text, spaced, morphs)
            verdict = self._verdict(name, f'{name}: {reason}', 'input')
            mine = {peer} if policy.own_intent(spaced, packed) else set()  # not done to them
            other = refiles(policy.classifier, name, p, set(self.categories) - quiet - mine)
            if other:
                verdict = replace(self._verdict(other, f'{other}: classifier reads {other} '
                                                f'({p[other]:.2f}) over {verdict.reason}',
                                                'input'), alert=verdict.alert or
                                  policy.alerts[other])
            return self._escalate(verdict, text, spaced, morphs)
        verdict = self._similar(spaced, packed, tokens, quiet)
        if verdict is not None and overrules(policy.classifier, verdict.category, 'similar',
                                             self._read(text, spaced, morphs),
                                             len(spaced.split())):
            verdict = None  # a resemblance is a guess too: the model reads everyday talk
        if verdict is None:
            verdict = self._classified(text, (spaced, packed, morphs), quiet, strict)
        return self._escalate(verdict, text, spaced, morphs) if verdict else _safe('input')

    def _read(self, text: str, spaced: str, morphs: str) -> Dict[str, float]:
        """Return the learned stage's P(category) of the sentence ({} when it is off)."""
        clf = self.classifier()
        if clf is None:
            return {}
        return dict(zip(clf.classes, map(float, clf.proba(spaced, morphs, self.vector(text)))))

    def _escalate(self, verdict: Verdict, text: str, spaced: str, morphs: str) -> Verdict:
        """Alert a caregiver when a crisis or abuse shows under another category.

        The first matching category decides what 토리 says ("엄마가 뜨거운 다리미를 내 손에
        댔어" matches a dangerous-object rule first), but when the learned stage reads the
        sentence as a crisis or abuse disclosure (P(self_harm) + P(abuse) >= alert_evidence
        and above P(the verdict's category)), the verdict alerts as well and says why. A
        self-harm wish said as a joke ("ㅋㅋ 농담") is the other way round: checked gently,
        no alert (policy.yaml joke_markers; the conversation stage counts it as low mood).
        """
        policy = self.policy
        if verdict.category == 'self_harm' and verdict.alert and policy.joke is not None \
                and found(policy.joke, spaced, compact(spaced)) \
                and not found(policy.joke_exempt, spaced, compact(spaced)):
            return replace(verdict, alert=False, reason=verdict.reason + ' (said as a joke: '
                           'gentle check, no alert)')
        if verdict.alert or policy.alert_evidence >= 1:
            return verdict
        p = self._read(text, spaced, morphs)
        evidence = {c: float(p.get(c, 0.0)) for c in ALERT_EVIDENCE if c in self.categories}
        if not evidence:
            return verdict
        total = sum(evidence.values())
        if total >= policy.alert_evidence and total > p.get(verdict.category, 0.0):
            cat = max(evidence, key=evidence.get)
            return replace(verdict, alert=True, reason=f'{verdict.reason}; alert: {cat} '
                           f'evidence (classifier {total:.2f})')
        return verdict

    def _similar(self, spaced: str, packed: str, tokens, quiet: Set[str]) -> Optional[Verdict]:
        """Flag a sentence close to a risky exemplar and not to a benign one (else None)."""
        sim = self.policy.similarity
        if not sim.enabled or len(packed) < sim.min_chars:
            return None
        near = self.exemplars.index(self.analyse.tokens).nearest(spaced, tokens)
        if near is None:
            return None
        threshold = sim.threshold_en if packed.isascii() else sim.threshold
        if near.score >= threshold and near.score >= near.benign_score + sim.margin and \
                near.label not in quiet and not self._allowed(near.label, packed):
            return self._verdict(near.label, f'{near.label}: similar to exemplar '
                                 f'"{near.text}" ({near.score:.2f})', 'input', near.score)
        return None

    def _classified(self, text: str, read: Tuple[str, str, str], quiet: Set[str],
                    strict: bool = False) -> Optional[Verdict]:
        """Flag a sentence the learned stage finds risky enough (else None)."""
        clf = self.classifier()
        if clf is None:
            return None
        spaced, packed, morphs = read
        name, p, p_name = clf.risky(spaced, morphs, self.vector(text))
        settings = self.policy.classifier
        # English needs twice the words: a Korean word carries its particles ("가방에")
        words = len(spaced.split()) // (2 if packed.isascii() else 1)
        threshold = settings.strict_threshold if strict else settings.threshold_long \
            if words >= settings.overrule_words else settings.threshold
        if p >= threshold and p_name >= settings.min_category and \
                name in self.categories and \
                name not in quiet and not self._allowed(name, packed):
            return self._verdict(name, f'{name}: classifier ({p:.2f})', 'input', p)
        if self.judge is not None and self.judge.unsure(p, threshold):
            said = self.judge.ask(spaced)
            cat = said if said in self.categories else name
            if said is not None and cat in self.categories and cat not in quiet and \
                    not self._allowed(cat, packed):
                return self._verdict(cat, f'{cat}: judge (classifier {p:.2f})', 'judge', p)
        return None

    def check_output(self, text: str) -> Verdict:
        """Check one sentence (or the whole reply) of the model before it is spoken.

        Categories marked output: always (sexual words, swearing) are flagged anywhere;
        guarded ones only when the sentence does not also steer the child to safety
        ("하지 마", "위험해", "어른한테 말해", "don't"), so 토리's own guidance passes.
        """
        spaced, packed, morphs, jamo, _ = self.analyse(text)
        if not packed:
            return _safe('output')
        guard = self.policy.guard
        guarded = guard is not None and guard.search(packed) is not None
        for name in self.policy.priority:
            cat = self.categories[name]
            if cat.output == 'never' or (cat.output == 'guarded' and guarded):
                continue
            reason = cat.match_any(spaced, packed, morphs, jamo, self.analyse.morphs)
            if reason:
                return self._verdict(name, f'{name}: {reason}', 'output')
        return _safe('output')

    def check_passage(self, text: str) -> Verdict:
        """Check a retrieved passage: flag instructions aimed at the model (prompt injection).

        Passages are data; one that tells the model to ignore its rules, take a new role or
        reveal its prompt is flagged (category 'injection', action 'drop') so the caller
        drops it. Sexual content and swearing (output: always) are flagged too.
        """
        spaced, packed, morphs, jamo, _ = self.analyse(text)
        if not packed:
            return _safe('passage')
        injection = self.policy.injection
        if injection is not None:
            m = (injection.search(spaced) or injection.search(packed)
                 or injection.search(unicodedata.normalize('NFKC', text).casefold()))
            if m:
                return Verdict(True, 'injection', 'drop', False,
                               f'injection: "{m.group().strip()}"', 'passage')
        for name in self.policy.priority:
            cat = self.categories[name]
            if cat.output == 'always':
                reason = cat.match_any(spaced, packed, morphs, jamo, self.analyse.morphs)
                if reason:
                    return Verdict(True, name, 'drop', False, f'{name}: {reason}', 'passage')
        return _safe('passage')

    def reply_for(self, verdict: Verdict, lang: str = 'ko') -> str:
        """Return the safe line to say for a flagged verdict, in the persona's voice.

        Input verdicts get their category's line (lines rotate so a child who repeats does
        not hear the same words every time); output and passage verdicts get the neutral
        replacement line.
        """
        replies = self.policy.replies
        lang = lang if lang in ('ko', 'en') else 'ko'
        key = verdict.category if verdict.stage == 'input' else verdict.stage
        key = key if key in replies else 'output'
        lines = replies[key][lang]
        with self._lock:
            turn = self._turn.get(f'{key}/{lang}', 0)
            self._turn[f'{key}/{lang}'] = turn + 1
        return lines[turn % len(lines)]

    def guidance_for(self, verdict: Verdict, lang: str = 'ko') -> str:
        """Return a note for the model's prompt for 'guide' verdicts ('' when none is set)."""
        note = self.policy.guidance.get(verdict.category) or {}
        return note.get(lang) or note.get('ko') or ''
