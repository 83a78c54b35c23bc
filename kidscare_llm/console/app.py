"""The console's web app (Starlette + Jinja2): login, the alerts page and its live stream.

pages.py adds the other pages. Every page needs a login once a password is set (without one
the console listens on loopback only and the robot's own screen is trusted); every POST needs
the session's CSRF token; templates escape everything (autoescape), so a child's words are
shown as text, never as HTML; no page loads anything from outside the robot (CSP 'self').
"""

import asyncio
import hmac
import json
from pathlib import Path
import time
from typing import Optional

from kidscare_llm.console.audit import AuditLog
from kidscare_llm.console.security import (COOKIE, is_loopback, LoginLimiter, PasswordFile,
                                           Sessions)
from kidscare_llm.console.texts import text
from kidscare_llm.console.views import Reader
from kidscare_llm.core.chat.alerts import AckLog, alert_id

HERE = Path(__file__).resolve().parent
FONTS = ('/usr/share/fonts/truetype/nanum/NanumGothic.ttf',  # Debian's fonts-nanum (setup.sh)
         '/usr/share/fonts/truetype/nanum/NanumBarunGothic.ttf')
HEADERS = {'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; "
                                      "frame-ancestors 'none'; form-action 'self'",
           'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer',
           'X-Frame-Options': 'DENY', 'Cache-Control': 'no-store'}


class Console:
    """What every route shares: the data dir, security, the audit log, the chat node link."""

    def __init__(self, data_dir: Path, link, lang: str, session_hours: float,
                 login_attempts: int, upload_mb: int, pusher=None):
        self.data_dir = Path(data_dir)
        own = self.data_dir / 'console'
        self.passwords = PasswordFile(own / 'password')
        self.sessions = Sessions(session_hours)
        self.limiter = LoginLimiter(login_attempts)
        self.audit = AuditLog(own / 'audit.jsonl')
        self.acks = AckLog(own / 'acks.jsonl')
        self.reader = Reader(self.data_dir, self.acks)
        self.link = link
        self.lang = lang
        self.upload_bytes = upload_mb * 1024 * 1024
        self.uploads = own / 'uploads'
        self.heard = 0  # alerts heard on /caregiver_alert (the live stream wakes on a change)
        self.pusher = pusher  # console/push.py: a home webhook or a command, or None

    def on_alert(self, message: str) -> None:
        """Note an alert from the topic (the page re-reads alerts.jsonl); push it if set."""
        self.heard += 1
        if self.pusher is None or not self.pusher.enabled:
            return
        try:
            alert = json.loads(message)
        except ValueError:
            return
        if isinstance(alert, dict):
            alert['id'] = alert_id(alert)
            self.pusher.push(alert)

    def alert_mark(self) -> tuple:
        """Return what changes whenever an alert arrives (topic count, alerts file size)."""
        try:
            size = (self.data_dir / 'alerts.jsonl').stat().st_size
        except OSError:
            size = 0
        return self.heard, size


def create_app(console: Console):
    """Return the Starlette app of the console."""
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from kidscare_llm.console import content, pages

    web = Web(console)
    routes = [Route('/', web.alerts_page), Route('/login', web.login_page),
              Route('/login', web.login, methods=['POST']),
              Route('/logout', web.logout, methods=['POST']),
              Route('/alerts/list', web.alerts_list), Route('/events', web.events),
              Route('/alerts/{alert_id}/ack', web.acknowledge, methods=['POST']),
              Route('/lang/{lang}', web.switch_language), Route('/font.ttf', web.font),
              *pages.routes(web), *content.routes(web),
              Mount('/static', StaticFiles(directory=HERE / 'static'), name='static')]
    app = Starlette(routes=routes)
    app.state.console = console
    return SecurityHeaders(app)


class SecurityHeaders:
    """ASGI wrapper adding HEADERS (CSP 'self', no framing, no sniffing) to every response."""

    def __init__(self, app):
        self.app = app
        self.state = app.state

    async def __call__(self, scope, receive, send):
        """Pass the request on; add the headers a response does not set itself."""
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]

        async def with_headers(message):
            if message['type'] == 'http.response.start':
                present = {k for k, _ in message.get('headers', [])}
                message = dict(message, headers=list(message.get('headers', []))
                               + [h for h in extra if h[0] not in present])
            await send(message)
        await self.app(scope, receive, with_headers)


class Forbidden(Exception):
    """A request without a login or a valid CSRF token."""


class Web:
    """The routes' helpers (sessions, rendering, checks) and the alert and login routes.

    Long because login, the session cookie, CSRF and rendering are one security boundary:
    every page goes through these few methods, and they are read together when reviewed.
    """

    def __init__(self, console: Console):
        import jinja2

        self.console = console
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / 'templates'),
                                      autoescape=True)
        self.env.filters['when'] = _when

    # -- helpers ----------------------------------------------------------------------------
    def session(self, request):
        """Return (cookie value, session) of a request; a new anonymous one if it has none."""
        token = request.cookies.get(COOKIE)
        found = self.console.sessions.get(token)
        if found is None:
            token = self.console.sessions.new()
            found = self.console.sessions.get(token)
        return token, found

    def who(self, request, session) -> Optional[str]:
        """Return who is logged in, 'robot' without a password on loopback, else None."""
        if session.who:
            return session.who
        if not self.console.passwords.is_set() and is_loopback(_address(request)):
            return 'robot'
        return None

    def lang(self, request) -> str:
        """Return the page language: the visitor's switch, else console.lang."""
        chosen = request.cookies.get('lang')
        return chosen if chosen in ('ko', 'en') else self.console.lang

    def render(self, request, name: str, status: int = 200, **context):
        """Render a page (or redirect to the login when nobody is logged in)."""
        from starlette.responses import HTMLResponse, RedirectResponse

        token, session = self.session(request)
        who = self.who(request, session)
        if who is None and name != 'login.html':
            response = RedirectResponse('/login', status_code=303)
        else:
            lang = self.lang(request)
            page = self.env.get_template(name).render(
                t=lambda key: text(key, lang), lang=lang, csrf=session.csrf, who=who,
                path=request.url.path, unacked=self.console.reader.unacknowledged() if who
                else 0, no_password=not self.console.passwords.is_set(), **context)
            response = HTMLResponse(page, status_code=status)
        self.set_cookie(response, token)
        return response

    def set_cookie(self, response, token: str) -> None:
        """Set the session cookie: HttpOnly, SameSite=Strict, for this robot only."""
        response.set_cookie(COOKIE, token, max_age=int(self.console.sessions.seconds),
                            httponly=True, samesite='strict', path='/')

    async def posted(self, request):
        """Return (form, who) of a state-changing request; Forbidden without login or CSRF."""
        token = request.cookies.get(COOKIE)
        session = self.console.sessions.get(token)
        if session is None:
            raise Forbidden('no session')
        form = await request.form()
        sent = form.get('csrf') or request.headers.get('x-csrf-token') or ''
        if not hmac.compare_digest(str(sent), session.csrf):
            raise Forbidden('CSRF token missing or wrong')
        who = self.who(request, session)
        if who is None:
            raise Forbidden('not logged in')
        return form, who

    def audit(self, request, who: str, action: str, target: str = '') -> None:
        """Record one caregiver action."""
        self.console.audit.record(who, _address(request), action, target)

    @staticmethod
    def forbidden(reason: str):
        """Answer 403 with the reason (no detail beyond it)."""
        from starlette.responses import PlainTextResponse

        return PlainTextResponse(f'403 forbidden: {reason}', status_code=403)

    # -- login ------------------------------------------------------------------------------
    def login_page(self, request):
        """Show the login form."""
        return self.render(request, 'login.html', error='')

    async def login(self, request):
        """Log in with the password (rate limited per address; CSRF as everywhere)."""
        from starlette.responses import RedirectResponse

        token = request.cookies.get(COOKIE)
        session = self.console.sessions.get(token)
        form = await request.form()
        if session is None or not hmac.compare_digest(str(form.get('csrf', '')), session.csrf):
            return self.forbidden('CSRF token missing or wrong')
        address = _address(request)
        if self.console.limiter.blocked(address):
            self.console.audit.record('?', address, 'login blocked (too many attempts)')
            return self.render(request, 'login.html', status=429, error='too_many')
        if not self.console.passwords.is_set() or \
                not self.console.passwords.verify(str(form.get('password', ''))):
            self.console.limiter.failed(address)
            self.console.audit.record('?', address, 'login failed')
            return self.render(request, 'login.html', status=401, error='bad_password')
        self.console.limiter.succeeded(address)
        self.console.sessions.drop(token)
        fresh = self.console.sessions.new('parent')  # a new cookie value on login
        self.console.audit.record('parent', address, 'login')
        response = RedirectResponse('/', status_code=303)
        self.set_cookie(response, fresh)
        return response

    async def logout(self, request):
        """End the session."""
        from starlette.responses import RedirectResponse

        try:
            _, who = await self.posted(request)
        except Forbidden as exc:
            return self.forbidden(str(exc))
        self.audit(request, who, 'logout')
        self.console.sessions.drop(request.cookies.get(COOKIE))
        return RedirectResponse('/login', status_code=303)

    def switch_language(self, request):
        """Switch the page language (a cookie) and go back."""
        from starlette.responses import RedirectResponse

        lang = request.path_params['lang']
        response = RedirectResponse(request.query_params.get('next', '/'), status_code=303)
        location = response.headers['location']
        if not location.startswith('/') or location.startswith('//') or '\\' in location:
            response.headers['location'] = '/'
        if lang in ('ko', 'en'):
            response.set_cookie('lang', lang, max_age=3600 * 24 * 365, samesite='strict')
        return response

    def font(self, request):
        """Serve the Nanum Korean font from the system (fonts-nanum), or 404."""
        from starlette.responses import FileResponse, Response

        for path in FONTS:
            if Path(path).is_file():
                return FileResponse(path, media_type='font/ttf',
                                    headers={'Cache-Control': 'max-age=86400'})
        return Response(status_code=404)

    # -- alerts -----------------------------------------------------------------------------
    def alerts_page(self, request):
        """Show the alerts, newest first, live."""
        pusher = self.console.pusher
        return self.render(request, 'alerts.html', alerts=self.console.reader.alerts(),
                           push=pusher.target if pusher and pusher.enabled else '',
                           push_failures=pusher.failures(10) if pusher else [])

    def alerts_list(self, request):
        """Render the alert list alone (the page swaps it in when the live stream says so)."""
        return self.render(request, '_alerts.html', alerts=self.console.reader.alerts())

    async def events(self, request):
        """Server-sent events: 'alert' whenever an alert arrives; ?once=1 ends after one."""
        from starlette.responses import StreamingResponse

        _, session = self.session(request)
        if self.who(request, session) is None:
            return self.forbidden('not logged in')
        once = request.query_params.get('once') == '1'
        console = self.console

        async def stream():
            mark, quiet = console.alert_mark(), time.monotonic()
            yield 'retry: 3000\n\n'
            while not await request.is_disconnected():
                now = console.alert_mark()
                if now != mark:
                    mark, quiet = now, time.monotonic()
                    count = console.reader.unacknowledged()
                    yield f'event: alert\ndata: {json.dumps({"unacked": count})}\n\n'
                    if once:
                        return
                elif time.monotonic() - quiet > 15:
                    quiet = time.monotonic()
                    yield ': still here\n\n'
                await asyncio.sleep(0.5)
        return StreamingResponse(stream(), media_type='text/event-stream')

    async def acknowledge(self, request):
        """Acknowledge an alert, with an optional note."""
        from starlette.responses import RedirectResponse

        try:
            form, who = await self.posted(request)
        except Forbidden as exc:
            return self.forbidden(str(exc))
        alert_id = request.path_params['alert_id']
        alert = next((a for a in self.console.reader.alerts() if a['id'] == alert_id), None)
        if alert is None:
            return self.render(request, 'message.html', status=404, message='404')
        note = str(form.get('note', ''))[:1000]
        self.console.acks.acknowledge(alert, who, note)
        self.audit(request, who, 'acknowledge alert', f"{alert['user']} {alert_id}")
        return RedirectResponse('/', status_code=303)


def _address(request) -> str:
    return request.client.host if request.client else ''


def _when(value) -> str:
    """Format unix time or an ISO string as local 'YYYY-MM-DD HH:MM'."""
    if isinstance(value, (int, float)):
        return time.strftime('%Y-%m-%d %H:%M', time.localtime(value))
    return str(value or '').replace('T', ' ')[:16]
