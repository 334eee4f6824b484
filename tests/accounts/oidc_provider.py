"""A small OpenID provider for the tests, served from a thread on a free local port.

It speaks the authorization code flow as a real provider does: a discovery document, a JWKS
with its RSA public key, an authorize endpoint that approves the configured user at once
(redirecting back with a code and the state), a token endpoint that checks the client's secret,
the redirect URI and the PKCE verifier and answers an RS256-signed ID token with the nonce, and a
userinfo endpoint behind the access token. Knobs let a test make it misbehave: a broken
signature, another nonce, another audience.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "reader-platform"
CLIENT_SECRET = "provider-shared-secret"
KEY_ID = "test-key-1"


@dataclass
class Grant:
    claims: dict[str, Any]
    nonce: str
    redirect_uri: str
    code_challenge: str


@dataclass
class Provider:
    """The provider's state; ``claims`` is the user the next authorization approves."""

    base_url: str = ""
    claims: dict[str, Any] = field(default_factory=dict)
    tamper_signature: bool = False
    nonce_override: str | None = None
    audience: str = CLIENT_ID
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def reset(self, **claims: Any) -> None:
        self.claims = {"sub": "subject-1", **claims}
        self.tamper_signature = False
        self.nonce_override = None
        self.audience = CLIENT_ID
        self.grants.clear()
        self.tokens.clear()

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/.well-known/openid-configuration"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.base_url}/authorize",
            "token_endpoint": f"{self.base_url}/token",
            "userinfo_endpoint": f"{self.base_url}/userinfo",
            "jwks_uri": f"{self.base_url}/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": KEY_ID, "alg": "RS256", "use": "sig"}]}

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        payload = {
            **grant.claims,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
            "nonce": self.nonce_override if self.nonce_override is not None else grant.nonce,
        }
        token = jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": KEY_ID})
        if self.tamper_signature:
            head, body, signature = token.split(".")
            flipped = "A" if signature[0] != "A" else "B"
            token = f"{head}.{body}.{flipped}{signature[1:]}"
        return token


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, body: dict[str, Any], status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            if url.path == "/.well-known/openid-configuration":
                self._json(provider.discovery())
            elif url.path == "/jwks":
                self._json(provider.jwks())
            elif url.path == "/authorize":
                self._authorize(query)
            elif url.path == "/userinfo":
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                claims = provider.tokens.get(token)
                if claims is None:
                    self._json({"error": "invalid_token"}, 401)
                else:
                    self._json(claims)
            else:
                self._json({"error": "not_found"}, 404)

        def _authorize(self, query: dict[str, str]) -> None:
            if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
                self._json({"error": "invalid_request"}, 400)
                return
            code = secrets.token_urlsafe(16)
            provider.grants[code] = Grant(
                claims=dict(provider.claims),
                nonce=query.get("nonce", ""),
                redirect_uri=query["redirect_uri"],
                code_challenge=query.get("code_challenge", ""),
            )
            target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/token":
                self._json({"error": "not_found"}, 404)
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            grant = provider.grants.pop(form.get("code", ""), None)  # a code works once
            if (
                form.get("client_id") != CLIENT_ID
                or form.get("client_secret") != CLIENT_SECRET
                or grant is None
                or form.get("redirect_uri") != grant.redirect_uri
                or _pkce_challenge(form.get("code_verifier", "")) != grant.code_challenge
            ):
                self._json({"error": "invalid_grant"}, 400)
                return
            access = secrets.token_urlsafe(16)
            provider.tokens[access] = dict(grant.claims)
            self._json(
                {
                    "access_token": access,
                    "token_type": "Bearer",
                    "id_token": provider.id_token(grant),
                }
            )

    return Handler


class RunningProvider:
    """The provider's HTTP server in a daemon thread; ``stop()`` shuts it down."""

    def __init__(self) -> None:
        self.provider = Provider()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.provider))
        self.provider.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reload_urls() -> None:
    """Build the URLconf again from the current settings (the SSO routes depend on them)."""
    import importlib

    from django.urls import clear_url_caches

    import studyplatform.accounts.urls
    import studyplatform.urls

    importlib.reload(studyplatform.accounts.urls)
    importlib.reload(studyplatform.urls)
    clear_url_caches()


@contextmanager
def sso_enabled(provider: Provider, **extra: Any) -> Iterator[None]:
    """The platform configured for ``provider`` through discovery, as the environment would."""
    from django.conf import settings
    from django.test import override_settings

    backends = [*settings.AUTHENTICATION_BACKENDS, "studyplatform.accounts.oidc.SSOBackend"]
    try:
        with override_settings(
            OIDC_ENABLED=True,
            OIDC_RP_CLIENT_ID=CLIENT_ID,
            OIDC_RP_CLIENT_SECRET=CLIENT_SECRET,
            OIDC_OP_DISCOVERY_URL=provider.discovery_url,
            OIDC_PROVIDER_NAME="Example Hospital",
            AUTHENTICATION_BACKENDS=backends,
            **extra,
        ):
            reload_urls()
            yield
    finally:
        reload_urls()  # the URLconf of the settings outside, even when the test failed
