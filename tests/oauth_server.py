"""A real local OAuth2 identity provider for the XOAUTH2 tests (stdlib
http.server in a thread, on a free loopback port; HTTPS when asked, with a
generated certificate).

Endpoints:

* ``POST /token`` -- client_credentials (RFC 6749 4.4), the generic provider;
* ``GET /<tenant>/v2.0/.well-known/openid-configuration`` and
  ``POST /<tenant>/oauth2/v2.0/token`` -- the shape of Entra ID, for MSAL;
  errors as Entra ID gives them (``error_codes``, ``AADSTSnnn:`` descriptions);
* ``POST /introspect`` -- token introspection (RFC 7662) for Dovecot's
  oauth2 passdb and for the aiosmtpd XOAUTH2 authenticator.

Tokens live ``lifetime`` seconds; ``revoke_tokens()`` makes every issued
token inactive; ``secret`` can be changed (a revoked client secret).
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class IdentityServer:
    def __init__(self, *, client_id: str = "processor-app", secret: str = "s3cret", tenant: str = "contoso.example",
                 username: str = "tracking", lifetime: float = 3600, tls_dir: Path | None = None,
                 twin_of: "IdentityServer | None" = None, certificate: bytes | None = None):
        self.client_id, self.secret, self.tenant, self.username = client_id, secret, tenant, username
        self.lifetime = lifetime
        self.certificate = certificate  # PEM: the app's registered certificate (client assertions)
        # token -> {"exp": monotonic, "active": bool}; a twin (e.g. the HTTPS face
        # MSAL talks to) shares the tokens of another (the HTTP one Dovecot asks).
        self.tokens: dict[str, dict] = twin_of.tokens if twin_of is not None else {}
        self.token_requests: list[dict] = []  # every token request's form (secrets included: a test server)
        self.introspections: list[tuple[str, bool]] = []
        self.discoveries = 0
        self.lock = twin_of.lock if twin_of is not None else threading.RLock()
        self.cafile: str | None = None
        self._tls_dir = tls_dir
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------
    def start(self) -> "IdentityServer":
        handler = type("Handler", (_Handler,), {"idp": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        if self._tls_dir is not None:
            cert, key = _self_signed(self._tls_dir)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
            self.cafile = str(cert)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="idp", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base(self) -> str:
        return f"{'https' if self.cafile else 'http'}://127.0.0.1:{self.port}"

    # ---- state -------------------------------------------------------------
    def issue(self) -> tuple[str, float]:
        tok = "at-" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[tok] = {"exp": time.monotonic() + self.lifetime, "active": True}
        return tok, self.lifetime

    def active(self, token: str) -> bool:
        with self.lock:
            t = self.tokens.get(token)
            ok = bool(t and t["active"] and time.monotonic() < t["exp"])
            self.introspections.append((token, ok))
            return ok

    def assertion_problem(self, form: dict, audience: str) -> str:
        """Why a client assertion (RFC 7523 JWT, signed with the app's
        certificate key) is not good, or ""."""
        import jwt
        from cryptography import x509

        if self.certificate is None:
            return "no certificate registered"
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return "wrong client_assertion_type"
        key = x509.load_pem_x509_certificate(self.certificate).public_key()
        try:
            claims = jwt.decode(form["client_assertion"], key, algorithms=["PS256", "RS256"], audience=audience)
        except jwt.PyJWTError as e:
            return str(e)
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            return "iss/sub is not the client id"
        return ""

    def revoke_tokens(self) -> None:
        with self.lock:
            for t in self.tokens.values():
                t["active"] = False

    def issued(self) -> int:
        with self.lock:
            return len(self.tokens)


def _self_signed(d: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cp, kp = d / "idp-cert.pem", d / "idp-key.pem"
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return cp, kp


class _Handler(BaseHTTPRequestHandler):
    idp: IdentityServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _form(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        return dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))

    def do_GET(self):  # noqa: N802
        idp = self.idp
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            idp.discoveries += 1
            tenant = parts[0]
            if tenant != idp.tenant:
                return self._send(400, {"error": "invalid_tenant", "error_codes": [90002],
                                        "error_description": f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure "
                                                             "you have the correct tenant ID."})
            base = f"{idp.base}/{tenant}"
            return self._send(200, {"token_endpoint": f"{base}/oauth2/v2.0/token",
                                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                                    "issuer": f"{base}/v2.0", "jwks_uri": f"{base}/discovery/v2.0/keys"})
        self._send(404, {"error": "not_found"})

    def do_POST(self):  # noqa: N802
        idp = self.idp
        path = self.path.split("?")[0]
        form = self._form()
        if path == "/introspect":
            tok = form.get("token", "")
            if idp.active(tok):
                return self._send(200, {"active": True, "username": idp.username, "client_id": idp.client_id})
            return self._send(200, {"active": False})
        microsoft = path == f"/{idp.tenant}/oauth2/v2.0/token"
        if path == "/token" or microsoft:
            with idp.lock:
                idp.token_requests.append(form)
            if form.get("grant_type") != "client_credentials":
                return self._send(400, {"error": "unsupported_grant_type"})
            if form.get("client_id") != idp.client_id:
                return self._send(400, {"error": "unauthorized_client", "error_codes": [700016] if microsoft else None,
                                        "error_description": f"AADSTS700016: Application with identifier "
                                                             f"'{form.get('client_id')}' was not found in the directory."
                                        if microsoft else "unknown client"})
            if microsoft and "client_assertion" in form:
                why = idp.assertion_problem(form, f"{idp.base}{path}")
                if why:
                    return self._send(401, {"error": "invalid_client", "error_codes": [700027],
                                            "error_description": f"AADSTS700027: Client assertion failed signature "
                                                                 f"validation. ({why})"})
            elif form.get("client_secret") != idp.secret:
                if microsoft:
                    return self._send(401, {"error": "invalid_client", "error_codes": [7000215],
                                            "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the "
                                                                 "secret being sent in the request is the client secret value, "
                                                                 "not the client secret ID."})
                return self._send(401, {"error": "invalid_client", "error_description": "client authentication failed"})
            tok, lifetime = idp.issue()
            return self._send(200, {"access_token": tok, "token_type": "Bearer", "expires_in": int(lifetime) or 1,
                                    "ext_expires_in": int(lifetime) or 1})
        self._send(404, {"error": "not_found"})
