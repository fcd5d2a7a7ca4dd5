"""Shared pytest fixtures.

Mail servers are real processes on free loopback ports (see
processor/devservers); nothing is mocked at the protocol level.
"""

from __future__ import annotations

import pytest
from support import IMAP_KINDS, start_imap


# --- mail server fixtures (devservers) ---

@pytest.fixture
def imap_server(tmp_path):
    """A started Dovecot (processor.devservers.imap.DovecotServer), stopped afterwards.

    Never skipped: without Dovecot the test fails with install instructions.
    """
    from processor.devservers.imap import DOVECOT_INSTALL_HINT, DovecotServer, dovecot_available

    if not dovecot_available():
        pytest.fail(DOVECOT_INSTALL_HINT, pytrace=False)
    srv = DovecotServer(tmp_path / "imap")
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(params=IMAP_KINDS)
def any_imap_server(request, tmp_path):
    """Each test that takes it runs once on Dovecot and once on pymap."""
    srv = start_imap(request.param, tmp_path / "imap")
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def smtp_server():
    """A started CaptureSMTPServer (aiosmtpd in a thread), stopped afterwards."""
    from processor.devservers.smtp import CaptureSMTPServer

    srv = CaptureSMTPServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


# --- store fixtures (lead) ---

@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """Tests that take ``db_url`` run once on SQLite and once on PostgreSQL."""
    from support import drop_pg_schema, new_pg_schema_url

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    url, schema = new_pg_schema_url()
    yield url
    drop_pg_schema(schema)


# --- templates get the variables declared for them ---

@pytest.fixture(autouse=True)
def _callers_pass_the_declared_template_variables(monkeypatch):
    """Every template rendered during a test is passed exactly the variables
    processor/template_contexts.py declares for it, which are the ones
    ``check`` renders it with. Fails the test (at teardown) otherwise."""
    from processor import render, template_contexts

    wrong: list[str] = []
    real = render.Renderer.render

    def render_checked(self, name, variables, **kw):
        if name in template_contexts.CONTEXTS:
            extra, missing = template_contexts.mismatch(name, set(variables))
            if extra or missing:
                wrong.append(f"{name}: passed but not declared {sorted(extra)}, declared but not passed {sorted(missing)}")
        return real(self, name, variables, **kw)

    monkeypatch.setattr(render.Renderer, "render", render_checked)
    yield
    assert not wrong, "callers and processor/template_contexts.py disagree:\n" + "\n".join(dict.fromkeys(wrong))
