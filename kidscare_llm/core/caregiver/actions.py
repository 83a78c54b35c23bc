"""The actions a caregiver command names: CaregiverDesk.handle calls do_<action> (dots: _).

Each reads or changes what the chat node owns (rules, a child's data, memory, the knowledge
base, the persona) through the desk's parts; an argument the action does not take, or a
request it cannot do, is an error answer, never a dead node.
"""

from typing import Optional

from kidscare_llm.core.caregiver import data
from kidscare_llm.core.chat.inputs import clean_user
from kidscare_llm.core.errors import KidscareError


class CommandError(KidscareError):
    """A caregiver command cannot be done (unknown action, missing argument, memory off)."""


class CaregiverActions:
    """The do_* actions of CaregiverDesk (engine, rules, knowledge, persona, clock are its)."""

    def _memory(self):
        memory = getattr(self.engine, 'memory', None)
        if memory is None:
            raise CommandError('child memory is off on this robot (memory.enabled: false)')
        return memory

    def do_ping(self) -> dict:
        """Say the node is here and who it talks with."""
        return {'model': self.engine.describe(), 'time': self.clock()}

    def do_rules_get(self) -> dict:
        """Return the rule book, and each safety category's alert: fixed by policy or chosen."""
        book = self.rules.to_dict()
        book['categories'] = self._alert_categories()
        return book

    def do_rules_set(self, user: str, quiet: Optional[str] = None,
                     limit_min: Optional[int] = None, memory: Optional[bool] = None,
                     voice: Optional[bool] = None, strict: Optional[bool] = None) -> dict:
        """Set the rule of one child (or of all with user '*')."""
        user = user if user == '*' else clean_user(user)
        self.rules.set(user, quiet, limit_min, memory, voice, strict)
        return self.do_rules_get()

    def do_rules_alert(self, category: str, on: bool) -> dict:
        """Alert a caregiver about a category the policy does not alert on (or stop)."""
        fixed = {c['category']: c['fixed'] for c in self._alert_categories()}
        if category not in fixed:
            raise CommandError(f'unknown safety category {category!r} '
                               f'(one of {", ".join(fixed)})')
        if fixed[category]:
            raise CommandError(f'{category} always alerts: the safety policy says so '
                               '(config/safety/policy.yaml)')
        self.rules.set_alert(category, bool(on))
        return self.do_rules_get()

    def _alert_categories(self) -> list:
        """Each category: alerts by policy (fixed on) or as a caregiver chose."""
        safety = getattr(self.engine, 'safety', None)
        if safety is None:
            return []
        policy = dict(safety.policy.alerts)
        policy.update(dict.fromkeys(safety.conversation.categories, True))
        return [{'category': name, 'fixed': fixed,
                 'alert': fixed or self.rules.alerts_also(name)}
                for name, fixed in policy.items()]

    def do_rules_clear(self, user: str) -> dict:
        """Drop a child's own rule."""
        self.rules.remove(user)
        return self.do_rules_get()

    def do_child_export(self, user: str) -> dict:
        """Return everything kept about one child."""
        return data.export_child(self.engine.store, self.alerts_path,
                                 getattr(self.engine, 'memory', None), self.rules, user)

    def do_child_delete(self, user: str) -> dict:
        """Delete a child: sessions, messages, alerts, KV, memory, rule, safety's turn state."""
        user = clean_user(user)
        done = data.delete_child(self.engine.store, self.alerts_path, self.engine.backend,
                                 getattr(self.engine, 'memory', None), self.rules, user)
        safety = getattr(self.engine, 'safety', None)
        if safety is not None:
            safety.conversation.forget(user)
        return done

    def do_retention_run(self, days: Optional[int] = None) -> dict:
        """Apply the retention now (days: this once, else retention.days)."""
        return data.apply_retention(self.engine.store, self.alerts_path, self.engine.backend,
                                    self.retention_days if days is None else int(days),
                                    self.clock())

    def do_memory_list(self, user: str, history: bool = False) -> list:
        """List what the robot remembers about a child."""
        return [m.to_dict() for m in self._memory().list(user, history=bool(history))]

    def do_memory_forget(self, user: str, item_id: str) -> bool:
        """Forget one memory item."""
        return bool(self._memory().forget(user, item_id))

    def do_memory_clear(self, user: str) -> int:
        """Forget everything remembered about a child."""
        return int(self._memory().clear(user))

    def do_knowledge_list(self) -> list:
        """List the knowledge base's documents (source, title, chunks, last ingested)."""
        return self.knowledge.list()

    def do_knowledge_status(self) -> dict:
        """Say how many chunks have dense vectors yet ({'done', 'total'}; BM25 has them all)."""
        return self.knowledge.status()

    def do_knowledge_ingest(self, files: list, progress=None) -> dict:
        """Ingest uploaded files (names in <data dir>/console/uploads), with progress."""
        return self.knowledge.ingest([str(f) for f in files], progress)

    def do_knowledge_remove(self, sources: list) -> dict:
        """Remove documents from the knowledge base (and an upload's file)."""
        return self.knowledge.remove([str(s) for s in sources])

    def do_persona_get(self) -> dict:
        """Return the persona's three texts and the system prompt's size in tokens."""
        return self.persona.get()

    def do_persona_preview(self, base: str, few_shot: str, informations: str) -> dict:
        """Return the system prompt size these texts would make (nothing is saved)."""
        return self.persona.preview(base=base, few_shot=few_shot, informations=informations)

    def do_persona_set(self, base: str, few_shot: str, informations: str) -> dict:
        """Save an edited persona under the data dir and answer with it from now on."""
        return self.persona.save(base=base, few_shot=few_shot, informations=informations)

    def do_persona_reset(self) -> dict:
        """Drop the edited persona and go back to persona.dir (or the packaged one)."""
        return self.persona.reset()
