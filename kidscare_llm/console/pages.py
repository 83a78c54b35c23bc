"""The Children, Rules and Data pages of the console.

Transcripts and talk time, quiet hours and limits, export, delete and retention. What the
chat node owns is changed by asking it (link.py).
"""

import json

from kidscare_llm.console.app import Forbidden
from kidscare_llm.console.chart import minutes_chart
from kidscare_llm.console.link import LinkError
from kidscare_llm.console.texts import text


def routes(web):
    """Return the routes of these pages, bound to the shared helpers."""
    from starlette.routing import Route

    pages = Pages(web)
    return [Route('/children', pages.children), Route('/children/{user:path}', pages.child),
            Route('/memory/forget', pages.forget_memory, methods=['POST']),
            Route('/rules', pages.rules), Route('/rules', pages.set_rule, methods=['POST']),
            Route('/rules/alerts', pages.set_alerts, methods=['POST']),
            Route('/data', pages.data), Route('/data/export', pages.export, methods=['POST']),
            Route('/data/delete', pages.delete, methods=['POST']),
            Route('/data/retention', pages.retention, methods=['POST'])]


class ChatNodePages:
    """Page handlers that ask the chat node to act (it owns the state they show)."""

    def __init__(self, web):
        self.web = web
        self.console = web.console

    def _call(self, action: str, **args):
        """Ask the chat node; return (result, error message or '')."""
        try:
            return self.console.link.call(action, **args), ''
        except LinkError as exc:
            return None, str(exc)

    async def _ask(self, action: str, **args):
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(lambda: self._call(action, **args))


class Pages(ChatNodePages):
    """Handlers of the Children, Rules and Data pages."""

    # -- children ---------------------------------------------------------------------------
    def children(self, request):
        """List every child, with sessions and today's talk time."""
        return self.web.render(request, 'children.html', children=self.console.reader.children())

    def child(self, request):
        """Show one child: 14-day chart, sessions, a transcript, what the robot remembers."""
        from markupsafe import Markup

        user = request.path_params['user']
        view = self.console.reader.child(user, request.query_params.get('session'))
        if view is None:
            return self.web.render(request, 'message.html', status=404, message='404')
        lang = self.web.lang(request)
        _, session = self.web.session(request)
        memory, error = (None, '')
        if self.web.who(request, session) is not None:
            memory, error = self._call('memory.list', user=user)
        chart = Markup(minutes_chart(view['days'], text('chart', lang)))
        return self.web.render(request, 'child.html', view=view, chart=chart, memory=memory,
                               memory_error=error)

    async def forget_memory(self, request):
        """Forget one memory item of a child (asked of the chat node)."""
        from starlette.responses import RedirectResponse

        try:
            form, who = await self.web.posted(request)
        except Forbidden as exc:
            return self.web.forbidden(str(exc))
        user, item = str(form.get('user', '')), str(form.get('item_id', ''))
        _, error = await self._ask('memory.forget', user=user, item_id=item)
        self.web.audit(request, who, 'forget memory item', f'{user} {item}')
        if error:
            return self.web.render(request, 'message.html', status=502, message=error)
        return RedirectResponse(f'/children/{user}', status_code=303)

    # -- rules ------------------------------------------------------------------------------
    def rules(self, request, status: int = 200, message: str = ''):
        """Show the rule book (asked of the chat node, which applies it)."""
        book, error = self._call('rules.get')
        return self.web.render(request, 'rules.html', status=status, book=book,
                               error=error, message=message,
                               children=[c['user'] for c in self.console.reader.children()])

    async def set_rule(self, request):
        """Set quiet hours and a daily limit for one child or all of them."""
        from starlette.concurrency import run_in_threadpool

        try:
            form, who = await self.web.posted(request)
        except Forbidden as exc:
            return self.web.forbidden(str(exc))
        user = str(form.get('user') or '*')
        quiet = str(form.get('quiet', '')).strip()
        limit = str(form.get('limit_min', '')).strip()
        args = {'user': user, 'quiet': quiet if quiet or user == '*' else None,
                'limit_min': int(limit) if limit.isdigit() else (0 if user == '*' else None)}
        for switch in ('memory', 'voice', 'strict'):  # '' (inherit), 'on' or 'off'
            args[switch] = {'on': True, 'off': False}.get(str(form.get(switch, '')))
        _, error = await self._ask('rules.set', **args)
        if not error:
            self.web.audit(request, who, 'set rule', json.dumps(args, ensure_ascii=False))
        return await run_in_threadpool(self.rules, request, 400 if error else 200,
                                       error or 'saved')

    async def set_alerts(self, request):
        """Choose which safety categories alert a caregiver, beyond those the policy fixes."""
        from starlette.concurrency import run_in_threadpool

        try:
            form, who = await self.web.posted(request)
        except Forbidden as exc:
            return self.web.forbidden(str(exc))
        book, error = await self._ask('rules.get')
        chosen = set(form.getlist('alert'))
        changed = []
        for cat in (book or {}).get('categories', []):
            want = cat['category'] in chosen
            if error or cat['fixed'] or want == cat['alert']:
                continue
            _, error = await self._ask('rules.alert', category=cat['category'], on=want)
            changed.append(f'{cat["category"]} {"on" if want else "off"}')
        if changed:
            self.web.audit(request, who, 'set alerts', ', '.join(changed))
        return await run_in_threadpool(self.rules, request, 400 if error else 200,
                                       error or 'saved')

    # -- data -------------------------------------------------------------------------------
    def data(self, request, status: int = 200, message: str = ''):
        """Show export, delete, retention and the audit log."""
        return self.web.render(request, 'data.html', status=status, message=message,
                               children=[c['user'] for c in self.console.reader.children()],
                               audit=self.console.audit.recent(200))

    async def export(self, request):
        """Download everything kept about one child as JSON (with the caregivers' notes)."""
        from starlette.responses import Response

        try:
            form, who = await self.web.posted(request)
        except Forbidden as exc:
            return self.web.forbidden(str(exc))
        user = str(form.get('user', ''))
        result, error = await self._ask('child.export', user=user)
        if error:
            return self.data(request, 502, error)
        result['acknowledgements'] = [a for a in self.console.acks.all().values()
                                      if a.get('user') == user]
        self.web.audit(request, who, 'export child', user)
        body = json.dumps(result, ensure_ascii=False, indent=1)
        safe = ''.join(c if c.isalnum() else '_' for c in user)[:40] or 'child'
        return Response(body, media_type='application/json', headers={
            'Content-Disposition': f'attachment; filename="kidscare-{safe}.json"'})

    async def delete(self, request):
        """Delete a child entirely, once the id was typed twice (the confirmation step)."""
        try:
            form, who = await self.web.posted(request)
        except Forbidden as exc:
            return self.web.forbidden(str(exc))
        user, confirm = str(form.get('user', '')), str(form.get('confirm', ''))
        if not user or user != confirm:
            return self.data(request, 400, 'confirm_mismatch')
        result, error = await self._ask('child.delete', user=user)
        if error:
            return self.data(request, 502, error)
        self.console.acks.forget_user(user)
        self.web.audit(request, who, 'delete child', f'{user}: '
                       + json.dumps({k: v for k, v in result.items() if k != 'user'}))
        return self.data(request, 200, 'deleted')

    async def retention(self, request):
        """Apply the retention now."""
        try:
            form, who = await self.web.posted(request)
        except Forbidden as exc:
            return self.web.forbidden(str(exc))
        result, error = await self._ask('retention.run')
        if error:
            return self.data(request, 502, error)
        self.web.audit(request, who, 'retention', json.dumps(result))
        return self.data(request, 200, 'deleted')
