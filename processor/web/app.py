"""The web application (Starlette) and its server (uvicorn).

``create_app(rt)`` builds the routes; ``serve(cfg)`` runs ``run.py web``;
``start_in_thread(rt)`` runs it beside the daemon (``[web] in_daemon``) or
in tests. Pages are Jinja2 templates in ``templates/web/`` (admins may edit
them), rendered on the server, autoescaped, no script. Every page but
``/login``, ``/healthz`` and ``/metrics`` needs a session, and every record,
file and per-person table is checked against the viewer (``access``).
"""
from __future__ import annotations

import logging
import re
import threading
from datetime import datetime
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from . import access, pages
from .auth import COOKIE, CodeBook, Sessions, web_key

log = logging.getLogger(__name__)

MAX_FORM = 4096  # bytes of a login form
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


class Web:
    def __init__(self, rt):
        self.rt = rt
        cfg = rt.cfg.web
        key = web_key(rt.ids.secret)
        self.codes = CodeBook(key, cfg.code_minutes * 60, cfg.codes_per_hour)
        self.sessions = Sessions(key, cfg.session_hours)
        folder = rt.cfg.path(rt.cfg.paths.templates) / "web"
        self.env = Environment(loader=FileSystemLoader(str(folder)), autoescape=select_autoescape(default=True),
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.env.globals.update(system=rt.cfg.system, quote=quote)
        self._deliver_lock = threading.Lock()

    # -- helpers ------------------------------------------------------------------
    def now(self) -> datetime:
        return self.rt.clock()

    def page(self, name: str, request: Request, status: int = 200, **ctx) -> HTMLResponse:
        html = self.env.get_template(name + ".html.j2").render(
            viewer=ctx.pop("viewer", None), now=pages.local(self.rt, self.now()), path=request.url.path, **ctx)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def viewer(self, request: Request):
        addr = self.sessions.read(request.cookies.get(COOKIE))
        return access.viewer_for(self.rt, addr) if addr else None

    def _login_redirect(self) -> Response:
        return RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)

    # -- login --------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self.page("login", request, step="address", address="", message="")
        form = await _form(request)
        addr = form.get("address", "").strip().lower()[:320]
        if "code" in form:
            ok = self.codes.redeem(addr, form["code"])
            if ok and access.viewer_for(self.rt, addr) is not None:
                resp = RedirectResponse("/", status_code=303, headers=SECURITY_HEADERS)
                cfg = self.rt.cfg.web
                resp.set_cookie(COOKIE, self.sessions.make(addr), max_age=int(cfg.session_hours * 3600),
                                httponly=True, secure=cfg.cookie_secure, samesite="lax", path="/")
                return resp
            return self.page("login", request, status=403, step="code", address=addr,
                             message="验证码不正确、已过期或已使用。请重新输入，或重新获取验证码。")
        message = await run_in_threadpool(self._send_code, addr)
        return self.page("login", request, step="code", address=addr, message=message)

    def _send_code(self, addr: str) -> str:
        same = "如果该地址在通讯录中，验证码已发到该邮箱，{m} 分钟内有效，只能使用一次。"
        m = f"{self.rt.cfg.web.code_minutes:g}"
        person = self.rt.directory.by_email(addr)
        if person is None:
            return same.format(m=m)
        code = self.codes.issue(addr)
        if code is None:
            return "获取验证码过于频繁，请稍后再试（每小时最多 {n} 次）。".format(n=self.rt.cfg.web.codes_per_hour)
        from ..outbox import Outgoing
        from ..queueing import MailQueue
        now = self.now()
        out = Outgoing(template="web_login_code", to=[addr], kind="notice", variables={
            "system": self.rt.cfg.system, "now": now, "name": person.name, "login_code": code, "minutes": m,
            "url": self.rt.cfg.web.url, "expires": pages.local(self.rt, now + _minutes(self.rt.cfg.web.code_minutes))})
        with self.rt.store.session() as s, s.begin():
            MailQueue(self.rt).put(s, [out], now=now)
        threading.Thread(target=self._deliver, name="web-login-mail", daemon=True).start()
        return same.format(m=m)

    def _deliver(self) -> None:
        from ..outbox import Deliverer
        with self._deliver_lock:
            try:
                Deliverer(self.rt.cfg, self.rt.store, templates=lambda: self.rt.renderer).deliver_due()
            except Exception:
                log.exception("登录验证码邮件发送失败（保留在发件箱，由 serve 重试）")

    async def logout(self, request: Request) -> Response:
        resp = self._login_redirect()
        resp.delete_cookie(COOKIE, path="/")
        return resp

    # -- pages --------------------------------------------------------------------
    def dashboard(self, request: Request) -> Response:
        v = self.viewer(request)
        if v is None:
            return self._login_redirect()
        return self.page("dashboard", request, viewer=v, d=pages.dashboard(self.rt, v, self.now()))

    def record(self, request: Request) -> Response:
        v = self.viewer(request)
        if v is None:
            return self._login_redirect()
        r = pages.record(self.rt, v, request.path_params["number"], self.now())
        if r is None:
            return self.page("missing", request, status=404, viewer=v)
        return self.page("record", request, viewer=v, r=r)

    def file(self, request: Request) -> Response:
        v = self.viewer(request)
        if v is None:
            return self._login_redirect()
        got = pages.attachment(self.rt, v, request.path_params["att"])
        if got is None:
            return self.page("missing", request, status=404, viewer=v)
        name, _ctype, data = got
        # Always a download, never rendered: what a sender attached is not trusted content.
        return Response(data, media_type="application/octet-stream", headers={
            **SECURITY_HEADERS, "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name or 'file')}"})

    def search(self, request: Request) -> Response:
        v = self.viewer(request)
        if v is None:
            return self._login_redirect()
        q = request.query_params.get("q", "")[:100]
        kind, state = request.query_params.get("kind", ""), request.query_params.get("state", "")
        if kind and state:
            results = pages.listing(self.rt, v, kind, state)
        else:
            results = pages.search(self.rt, v, q) if q.strip() else None
        return self.page("search", request, viewer=v, q=q, results=results)

    def _month(self, request: Request) -> str:
        m = request.query_params.get("month", "")
        return m if _MONTH.match(m) else pages.this_month(self.rt, self.now())

    def report(self, request: Request) -> Response:
        v = self.viewer(request)
        if v is None:
            return self._login_redirect()
        kind = request.path_params["kind"]
        if kind not in TITLES:
            return self.page("missing", request, status=404, viewer=v)
        month = self._month(request)
        presales = request.query_params.get("presales", "")[:100] or None
        headers, rows = pages.person_report(self.rt, v, kind, month, presales)
        if kind == "tracking":
            headers, rows = _without_message_ids(headers, rows)
        return self.page("report", request, viewer=v, kind=kind, title=TITLES[kind], month=month,
                         presales=presales or "", headers=headers, rows=rows,
                         engineers=pages.engineers(self.rt) if v.see_all else [v.name])

    def tracking_xlsx(self, request: Request) -> Response:
        v = self.viewer(request)
        if v is None:
            return self._login_redirect()
        from ..reports import period_line
        from ..reports.xlsx import MIME, tracking_sheets, workbook_bytes
        month = self._month(request)
        presales = (request.query_params.get("presales", "")[:100] or None) if v.see_all else v.name
        headers, rows = pages.person_report(self.rt, v, "tracking", month, presales)
        sheets = tracking_sheets(self.rt, headers, rows, presales=presales)
        data = workbook_bytes(sheets, period=period_line(self.rt, pages.report_args(month, presales)))
        name = f"项目跟踪表-{presales or '全部'}-{month}.xlsx"
        return Response(data, media_type=MIME, headers={
            **SECURITY_HEADERS, "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})

    # -- operators ----------------------------------------------------------------
    def healthz(self, request: Request) -> Response:
        from .health import health
        ok, body = health(self.rt, self.now())
        return JSONResponse(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})

    def metrics(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST
        from .metrics import render
        return Response(render(self.rt), media_type=CONTENT_TYPE_LATEST)


TITLES = {"tracking": "项目跟踪表", "sla": "服务时效", "complaints": "投诉统计"}


def _without_message_ids(headers, rows):
    from ..reports.xlsx import _message_id_columns
    keep = [i for i, hidden in enumerate(_message_id_columns(headers, rows)) if not hidden] if rows else \
        [i for i, h in enumerate(headers) if h != "邮件"]
    return [headers[i] for i in keep], [[r[i] for i in keep] for r in rows]


def _minutes(n: float):
    from datetime import timedelta
    return timedelta(minutes=n)


async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form, bounded (no multipart: nothing is uploaded here)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            break
    parsed = parse_qs(body[:MAX_FORM].decode("utf-8", "replace"), max_num_fields=10)
    return {k: v[0][:500] for k, v in parsed.items() if v}


def create_app(rt) -> Starlette:
    w = Web(rt)
    app = Starlette(routes=[
        Route("/", w.dashboard),
        Route("/login", w.login, methods=["GET", "POST"]),
        Route("/logout", w.logout, methods=["GET", "POST"]),
        Route("/r/{number}", w.record),
        Route("/r/{number}/files/{att:int}", w.file),
        Route("/search", w.search),
        Route("/report/{kind:str}", w.report),
        Route("/tracking.xlsx", w.tracking_xlsx),
        Route("/healthz", w.healthz),
        Route("/metrics", w.metrics),
    ])
    app.state.web = w
    return app


class Server:
    """uvicorn in a thread: ``start()`` returns once it listens."""

    def __init__(self, rt, host: str | None = None, port: int | None = None):
        import uvicorn
        self.rt = rt
        self.config = uvicorn.Config(create_app(rt), host=host or rt.cfg.web.host,
                                     port=rt.cfg.web.port if port is None else port,
                                     log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self) -> "Server":
        import time
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"网页服务无法在 {self.config.host}:{self.config.port} 上启动（端口被占用？）")
            time.sleep(0.05)
        return self

    @property
    def web(self) -> Web:
        return self.config.app.state.web

    @property
    def port(self) -> int:
        socks = [s for srv in (self.server.servers or []) for s in srv.sockets]
        return socks[0].getsockname()[1] if socks else self.config.port

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve(rt) -> None:
    """``run.py web``: in the foreground until interrupted."""
    import uvicorn
    uvicorn.run(create_app(rt), host=rt.cfg.web.host, port=rt.cfg.web.port, log_level="warning",
                access_log=False, lifespan="off")
