"""What the station app accepts: the token, JSON-only posts from its own origin, checked inputs.

Every state-changing request (POST) passes :func:`check_post`:

* with a token configured, ``Authorization: Bearer <token>`` must match (constant-time
  comparison), else 401;
* the body must be ``application/json``, else 415: an HTML form cannot send that type
  without a CORS preflight, which this server never grants;
* an ``Origin`` header, when the browser sends one, must name the ``Host`` the request was
  sent to, else 403: a page on another site cannot drive a kiosk listening on loopback.

Inputs are pydantic models with patterns (:class:`StartRequest`, :class:`PromptAnswer`): a
serial is 1..64 of letters, digits, ``.``, ``_``, ``-``, starting with a letter or digit and
never containing ``..``, so it can reach neither a shell (the run's argv is a list, never a
command line) nor a path; anything else is 422.
"""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SERIAL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
OPERATOR_PATTERN = r"^[^\W_][\w .'-]{0,63}$"


def _no_dot_dot(value: str) -> str:
    if ".." in value:
        raise ValueError("must not contain '..'")
    return value


Serial = Annotated[str, Field(pattern=SERIAL_PATTERN), AfterValidator(_no_dot_dot)]
Operator = Annotated[str, Field(pattern=OPERATOR_PATTERN)]


class StartRequest(BaseModel):
    """``POST /api/runs``: the DUT serial (empty: read it from the camera) and the operator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dut: Serial | None = None
    operator: Operator


class PromptAnswer(BaseModel):
    """``POST /api/runs/{id}/prompt``: the scanned label."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answer: Serial


def bearer_ok(request: Request, token: str | None) -> bool:
    """True if no token is configured or the request carries it."""
    if token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


def origin_ok(request: Request) -> bool:
    """True if the request has no ``Origin`` or its host:port is the request's ``Host``."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    parts = urlsplit(origin)
    return bool(parts.scheme in ("http", "https") and parts.netloc and
                parts.netloc.lower() == host.lower())


def check_post(request: Request, token: str | None) -> None:
    """Refuse a state-changing request that lacks the token, is not JSON or comes from
    another origin (see the module docstring)."""
    if not bearer_ok(request, token):
        raise HTTPException(401, "a valid token is required (Authorization: Bearer ...)",
                            headers={"WWW-Authenticate": "Bearer"})
    if not origin_ok(request):
        raise HTTPException(403, f"origin {request.headers.get('origin')!r} is not this "
                                 f"server ({request.headers.get('host', '')})")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPException(415, "requests must be application/json")


__all__ = ["OPERATOR_PATTERN", "SERIAL_PATTERN", "Operator", "PromptAnswer", "Serial",
           "StartRequest", "bearer_ok", "check_post", "origin_ok"]
