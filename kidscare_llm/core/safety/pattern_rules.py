"""The conversation stage's patterns as rules over a child's recent turns, and how cues settle.

Split from conversation.py (which keeps the per-child state): each rule takes the recent
[(turn index, Turn)] and conversation.yaml's settings and returns (why, the turns that made
it) or None; settle decides a turn's cues once the cues that take others away had their say.
"""

import re
from typing import Dict, List, Optional, Tuple

from kidscare_llm.core.safety.conversation_rules import (GROOMING_MORE, HYPOTHETICAL,
                                                         ISOLATING, KIN, LAUGH)


PLAIN = frozenset({'secret', 'touch', 'photo_ask'})  # what one turn alone may complete


def grooming(recent, settings):
    """Return (why, turns) of grooming, else None.

    An adult who is not a parent + isolation (a secret, meeting alone, a photo asked for,
    a stranger's ride) + one more cue (a stranger asking for a photo is two); without a
    word for an adult, a secret + another isolation + one more. A secret told within
    three turns after a surprise does not count, nor a ride or a meeting a parent set up.
    Someone met online who gives gifts and calls the child special is enough on its own.
    One turn alone completes it only when it says a secret, a touch or a photo asked for.
    """
    stranger = any('stranger' in t.cues for _, t in recent)
    cued, kinds = [], set()
    for n, (i, t) in enumerate(recent):
        if 'meet' in t.cues and (kinds | t.cues) & {'adult'}:
            kinds.add('alone')  # an adult (this turn or before) asks to meet
        cues = set(t.cues) & (set(GROOMING_MORE) | {'adult', 'photo_ask', 'touch'})
        if 'secret' in cues and any('surprise' in u.cues for _, u in recent[max(0, n - 3):n]):
            cues.discard('secret')
        if cues:
            cued.append((i, t))
            kinds |= cues
    if any('arranged' in t.cues for _, t in recent):  # a parent set it up: not alone
        kinds -= {'alone', 'ride'}
    isolating = set(ISOLATING) | ({'ride'} if stranger else set())
    counted = kinds - {'adult'} if stranger else kinds - {'adult', 'photo_ask'}
    # whoever it is: kept from the parents, and alone with them or a photo, and a gift
    unnamed = 'secret' in kinds and kinds & isolating - {'secret'} and len(counted) >= 3
    # someone met online who pays the child and says they are special, the parents not told
    lured = stranger and {'gift', 'special'} <= kinds and \
        any('online' in t.cues for _, t in recent) and not any('told' in t.cues for _, t in recent)
    if len(cued) == 1 and not kinds & PLAIN and not lured:  # plans ("삼촌이 데리러 온대")
        return None
    if lured or ('adult' in kinds or stranger or unnamed) and kinds & isolating and \
            len(counted) >= 2:  # someone the child does not know is a grown-up too
        return ('an adult who is not a parent with ' + ', '.join(
            sorted(kinds - {'adult'})), cued)
    return None


def low_mood(recent, settings):
    """Return (why, turns) of low mood or self-blame said again (since feeling better)."""
    s = settings
    last_ok = max((n for n, (_, t) in enumerate(recent) if t.cues & {'recover', 'resolved'}),
                  default=-1)  # feeling better, or the quarrel made up
    low = [(i, t) for i, t in recent[last_ok + 1:] if t.cues & {'low', 'blame'}]
    blame = [x for x in low if 'blame' in x[1].cues]
    lasting = any(t.cues & {'persist', 'blame'} for _, t in low)
    if lasting:  # what went wrong counts as a low turn beside self-blame or lasting low
        low = sorted(low + [(i, t) for i, t in recent[last_ok + 1:]
                            if 'setback' in t.cues and not t.cues & {'low', 'blame'}],
                     key=lambda x: x[0])
    if len(blame) >= s['blame_turns'] or (len(low) >= s['low_mood_turns'] and lasting) or \
            len(low) >= s['low_mood_turns_many'] > 0:  # turn after turn is lasting too
        return (f'low mood or self-blame in {len(low)} turns', low)
    return None


def bullying(recent, settings):
    """Return (why, turns) of the same peer hurting the child again (걔: the last named).

    One turn that says it keeps happening ("예준이가 오늘도 때렸어") is enough, unless the
    one who did it is family, the child laughs, or they made up before; a brother or sister
    needs a third turn.
    """
    s = settings
    by_peer: Dict[str, List[Tuple[int, object]]] = {}
    last, made_up = '', set()
    for i, t in recent:
        peer = t.peer or last
        if t.peer:
            last = t.peer
        if 'resolved' in t.cues:
            by_peer.pop(peer, None)
            made_up.add(peer)
        elif 'hurt' in t.cues:
            by_peer.setdefault(peer, []).append((i, t))
    for peer, turns in by_peer.items():
        # a peer named in two turns is "again"; unnamed children need "또/맨날" said
        again = bool(peer) or any(t.cues & {'again', 'persist'} for _, t in turns)
        if peer in KIN and len(turns) < s['bullying_turns'] + 1:
            continue  # a brother or sister twice is a squabble; a third time, the rule speaks
        # "예준이가 오늘도 때렸어": the child says it keeps happening, in one turn
        said = 0 if peer in KIN or peer in made_up else sum(
            1 for _, t in turns if 'again' in t.cues and not LAUGH.search(t.text))
        if len(turns) >= s['bullying_turns_without_again'] or \
                (len(turns) >= s['bullying_turns'] and again) or \
                (said >= s['bullying_turns_said_again'] > 0):
            who = f'"{peer}"' if peer else 'the same children'
            return (f'{who} hurt the child in {len(turns)} turns', turns)
    return None


def vetoed(category: str, recent) -> bool:
    """Return True where the rules know better than the pattern model that it is not category.

    The model reads cues and probabilities, not who did what: it cannot tell a parent set a
    meeting up or was told, that two children each did it once, that they made up, that the
    one who did it is family, that the child laughs, or that a bored child is not low.
    """
    cues = set().union(*(t.cues for _, t in recent))
    if category == 'grooming':  # family (no outsider there), the parents know, or the
        # family was there and nothing isolating was said ("아빠 친구 아저씨가 놀러 왔어")
        return ('family' in cues and not cues & {'outsider', 'stranger'}) or \
            bool(cues & {'arranged', 'told'}) or \
            ('together' in cues and not cues & set(ISOLATING))
    if category == 'bullying_repeat':
        peers = [t.peer for _, t in recent if t.peer and 'hurt' in t.cues]
        return (len(peers) > 1 and len(set(peers)) == len(peers)) or \
            any(p in KIN for p in peers) or 'resolved' in cues or \
            any(LAUGH.search(t.text) for _, t in recent)
    if category == 'low_mood':  # two turns read low (boredom does not), and not better now
        low = sum(1 for _, t in recent if t.cues & {'low', 'blame'})
        return low < 2 or 'recover' in recent[-1][1].cues
    return False


# "장난이래 근데 하나도 안 웃겨": called a joke, and it was not one to the child
NOT_FUNNY = re.compile(r'(하나도|전혀|별로|진짜)\s?안\s?웃|안\s?웃겨|\b(not|wasn.?t|isn.?t) funny\b')
# "엄마가 치킨 사 준대": a parent's treat is not a gift from someone else
PARENT_GIVES = re.compile(r'(?<![가-힣])(엄마|아빠|부모님)(가|이|께서)\s?.{0,12}(사\s?준|사\s?줬|줬|준대|'
                          r'주셨|사\s?주셨)|\b(my )?(mom|mum|dad) (got|bought|gave) me\b')
# "우리 할머니", "my grandpa": the child's own family, not the outsider just named
OWN_FAMILY = re.compile(r'(우리|울|내)\s?(할|외할|친할|삼촌|이모|고모)|\bmy (grand|uncle|aunt)')
# "택배 아저씨가 할머니한테 사인 받고 갔어": the outsider there was someone else, not grandma
ROLE = re.compile(r'아저씨|아줌마|쌤|선생님|코치|사장님|기사님|택배|알바|경비|\b(man|lady|guy)\b')


def settle(cues: set, spaced: str, before, category: Optional[str], kin_before=None) -> set:
    """Return a turn's cues once the cues that take others away have had their say.

    An apology clears hurt (unless the child says it was not funny); a parent's treat is no
    gift; a parent told or has it (told) clears the secret; family is not an
    outsider unless someone else does it ("할머니 기도할 때 아저씨가…") or the outsider last
    named (kin_before: the last turn naming family or an outsider) is meant, and an outsider
    is a grown-up; the family going too (together) clears being alone; a lesson retold
    (which goes on in a hypothetical turn) clears what happened; "오늘도 그랬어" (same)
    repeats the turn before; a self-harm line said as a joke still counts as low (category:
    the check's).
    """
    if 'resolved' in cues and NOT_FUNNY.search(spaced):
        cues = (cues - {'resolved'}) | {'hurt'}  # "장난이래 근데 하나도 안 웃겨"
    if 'resolved' in cues:
        cues.discard('hurt')  # an apology or a game both play
    if 'gift' in cues and PARENT_GIVES.search(spaced):
        cues.discard('gift')  # "엄마가 치킨 사 준대": the parents' own treat
    if 'told' in cues:  # the child told a parent, or a parent has it: not kept from them
        cues -= {'secret', 'photo_ask'}
    if 'family' in cues and kin_before is not None and 'outsider' in kin_before.cues and \
            not ROLE.search(kin_before.text) and not OWN_FAMILY.search(spaced):
        cues.add('outsider')  # "할아버지가 …" after "놀이터에 사탕 주는 할아버지": that one
    if 'outsider' in cues:  # "식당 이모", "놀이터에 사탕 주는 할아버지": a grown-up, not family
        cues.add('adult')
    if 'family' in cues and not cues & {'stranger', 'outsider'}:  # "우리 삼촌": family
        cues -= {'adult', 'stranger', 'secret', 'alone', 'ride', 'photo_ask'}
    if 'lesson' not in cues and before is not None and 'lesson' in before.cues and \
            HYPOTHETICAL.search(spaced):
        cues.add('lesson')  # the lesson goes on: "…하면 싫어요 하고 도망가래"
    if 'together' in cues:
        cues -= {'alone', 'ride'}  # the family or the group goes too
    if 'lesson' in cues:  # a safety lesson retold: nothing happened to the child
        cues -= set(GROOMING_MORE) | {'adult', 'stranger', 'photo_ask', 'touch', 'meet'}
    if category == 'self_harm':
        cues.add('low')
    if 'same' in cues and before is not None:  # "오늘도 그랬어": what the turn before said
        cues |= {'hurt', 'again'} if 'hurt' in before.cues else set()
        cues |= {'low', 'persist'} if before.cues & {'low', 'blame'} else set()
    return cues
