"""Content-Security-Policy: the browser runs only the app's own scripts.

Scripts come from the app's origin, plus the inline ones Dash writes into
its page (the renderer start-up and the clientside callbacks), allowed by
their hashes (``Dash.csp_hashes``) - no ``'unsafe-inline'`` and no
``'unsafe-eval'`` for scripts. Styles allow inline: Plotly writes its chart
styles into ``<style>`` elements, and a style cannot run code. Nothing is
loaded from another origin, the app cannot be framed, forms post only here.
"""

from __future__ import annotations

import dash
import flask


def policy(script_hashes: list[str]) -> str:
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],  # Plotly's PNG export draws via data/blob URLs
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{k} {' '.join(v)}" for k, v in directives.items())


def init_csp(server: flask.Flask, app: dash.Dash) -> None:
    """Send the policy with every response. The hashes are taken at the first
    response, once every page module has registered its clientside callbacks."""
    built: list[str] = []

    @server.after_request
    def _csp(resp: flask.Response) -> flask.Response:
        if not built:
            built.append(policy(list(app.csp_hashes())))
        resp.headers.setdefault("Content-Security-Policy", built[0])
        return resp
