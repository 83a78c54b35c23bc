"""The Knowledge and Persona pages: what the robot knows and who it is.

Both belong to the chat node, so every change is asked of it (knowledge.*, persona.*): an
upload is checked and stored under the data dir here (uploads.py), then the chat node
ingests it in the background while the page shows a progress bar; a persona edit is checked
here and again there, saved there under the data dir, and used from the next reply on.
"""

from kidscare_llm.console.app import Forbidden
from kidscare_llm.console.pages import ChatNodePages
from kidscare_llm.console.uploads import (check_content, Jobs, MAX_FILES, safe_name, store,
                                          UploadError)
from kidscare_llm.core.caregiver.persona import FIELDS, MAX_CHARS, PersonaEditError, validate

FORM_SLACK = 256 * 1024  # the form's other fields and multipart headers


def routes(web):
    """Return the routes of these pages, bound to the shared helpers."""
    from starlette.routing import Route

    pages = Content(web)
    return [Route('/knowledge', pages.knowledge),
            Route('/knowledge/upload', pages.upload, methods=['POST']),
            Route('/knowledge/jobs/{job_id}', pages.job),
            Route('/knowledge/status', pages.embedding),
            Route('/knowledge/delete', pages.delete, methods=['POST']),
            Route('/persona', pages.persona),
            Route('/persona', pages.save_persona, methods=['POST']),
            Route('/persona/preview', pages.preview, methods=['POST']),
            Route('/persona/reset', pages.reset_persona, methods=['POST'])]


class Content(ChatNodePages):
    """Handlers of the Knowledge and Persona pages."""

    def __init__(self, web):
        super().__init__(web)
        self.jobs = Jobs(self.console.link, max(600.0, getattr(web.console.link, 'timeout_s', 0)))

    async def _posted(self, request):
        try:
            return await self.web.posted(request)
        except Forbidden as exc:
            return None, str(exc)

    # -- knowledge --------------------------------------------------------------------------
    def knowledge(self, request, status: int = 200, job=None, message: str = ''):
        """List the documents; show a job's progress when the page was opened for one."""
        if job is None and request.query_params.get('job'):
            job = self.jobs.get(request.query_params['job'])
        documents, error = self._call('knowledge.list')
        embedding, _ = self._call('knowledge.status') if documents is not None else (None, '')
        return self.web.render(request, 'knowledge.html', status=status, documents=documents,
                               error=error, job=job.to_dict() if job else None,
                               embedding=embedding,
                               message=message, limit_mb=self.console.upload_bytes // 2**20,
                               max_files=MAX_FILES)

    async def upload(self, request):
        """Check and store the uploaded files, then ingest them in the background."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import PlainTextResponse, RedirectResponse

        limit = self.console.upload_bytes
        length = request.headers.get('content-length', '')
        if length.isdigit() and int(length) > limit * MAX_FILES + FORM_SLACK:
            return PlainTextResponse('413: upload too large', status_code=413)
        form, who = await self._posted(request)
        if form is None:
            return self.web.forbidden(who)
        files = [f for f in form.getlist('files') if hasattr(f, 'read')][:MAX_FILES]
        accepted, refused = [], []
        for upload in files:
            try:
                name = safe_name(upload.filename or '')
                data = await upload.read(limit + 1)
                check_content(name, data, limit)
                await run_in_threadpool(store, self.console.data_dir, name, data)
                accepted.append(name)
            except UploadError as exc:
                refused.append([upload.filename or '?', str(exc)])
        if not files:
            return await run_in_threadpool(self.knowledge, request, 400, None, 'no_file')
        job = self.jobs.start(sorted(set(accepted)), refused)
        self.web.audit(request, who, 'upload knowledge', ', '.join(accepted) or '-')
        status = 303 if accepted else 400
        if status == 400:
            return await run_in_threadpool(self.knowledge, request, 400, job)
        return RedirectResponse(f'/knowledge?job={job.id}', status_code=status)

    def embedding(self, request):
        """Return how many chunks have dense vectors yet, as JSON (the page's bar polls it)."""
        from starlette.responses import JSONResponse

        _, session = self.web.session(request)
        if self.web.who(request, session) is None:
            return self.web.forbidden('not logged in')
        status, error = self._call('knowledge.status')
        return JSONResponse(status or {'error': error}, status_code=200 if status else 502)

    def job(self, request):
        """Return a job's progress as JSON (the page's progress bar polls it)."""
        from starlette.responses import JSONResponse

        _, session = self.web.session(request)
        if self.web.who(request, session) is None:
            return self.web.forbidden('not logged in')
        job = self.jobs.get(request.path_params['job_id'])
        if job is None:
            return JSONResponse({'error': 'unknown job'}, status_code=404)
        return JSONResponse(job.to_dict())

    async def delete(self, request):
        """Remove one document from the knowledge base (and its upload)."""
        from starlette.concurrency import run_in_threadpool

        form, who = await self._posted(request)
        if form is None:
            return self.web.forbidden(who)
        source = str(form.get('source', ''))
        result, error = await self._ask('knowledge.remove', sources=[source])
        if not error:
            self.web.audit(request, who, 'remove knowledge', source)
        message = error or ('removed' if result and result['removed'] else 'not_removed')
        return await run_in_threadpool(self.knowledge, request, 502 if error else 200, None,
                                       message)

    # -- persona ----------------------------------------------------------------------------
    def persona(self, request, status: int = 200, texts=None, message: str = '', size=None):
        """Show the persona's three texts, editable, with the system prompt size."""
        current, error = self._call('persona.get')
        shown = dict(texts or current or {})
        return self.web.render(request, 'persona.html', status=status, persona=shown,
                               current=current, size=size or current, error=error,
                               message=message, fields=FIELDS, max_chars=MAX_CHARS)

    def _texts(self, form) -> dict:
        return {name: str(form.get(name, '')) for name in FIELDS}

    async def save_persona(self, request):
        """Save the edited persona (the chat node validates it too and uses it at once)."""
        from starlette.concurrency import run_in_threadpool

        form, who = await self._posted(request)
        if form is None:
            return self.web.forbidden(who)
        texts = self._texts(form)
        try:
            texts = validate(texts)
        except PersonaEditError as exc:
            return await run_in_threadpool(self.persona, request, 400, texts, str(exc))
        action = 'persona.preview' if form.get('do') == 'preview' else 'persona.set'
        result, error = await self._ask(action, **texts)
        if error:
            return await run_in_threadpool(self.persona, request, 400, texts, error)
        if action == 'persona.set':
            self.web.audit(request, who, 'edit persona',
                           f"{result['tokens']} tokens")
            return await run_in_threadpool(self.persona, request, 200, None, 'saved')
        return await run_in_threadpool(self.persona, request, 200, texts, '', result)

    async def preview(self, request):
        """Return the system prompt size of the posted texts as JSON (nothing is saved)."""
        from starlette.responses import JSONResponse

        form, who = await self._posted(request)
        if form is None:
            return self.web.forbidden(who)
        try:
            texts = validate(self._texts(form))
        except PersonaEditError as exc:
            return JSONResponse({'error': str(exc)}, status_code=400)
        result, error = await self._ask('persona.preview', **texts)
        if error:
            return JSONResponse({'error': error}, status_code=400)
        return JSONResponse(result)

    async def reset_persona(self, request):
        """Drop the edited persona: back to persona.dir or the packaged one."""
        from starlette.concurrency import run_in_threadpool

        form, who = await self._posted(request)
        if form is None:
            return self.web.forbidden(who)
        _, error = await self._ask('persona.reset')
        if not error:
            self.web.audit(request, who, 'reset persona')
        return await run_in_threadpool(self.persona, request, 502 if error else 200, None,
                                       error or 'saved')
