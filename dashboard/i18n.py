"""Languages of the web app: Flask-Babel, the catalogs, the user's choice.

- Strings are marked in the source: ``_("...")`` (``dashboard.i18n._``,
  Flask-Babel's gettext) where the text is built inside a request, and
  ``N_("...")`` (:mod:`db.i18n`) where it is built earlier (module
  constants, the services' messages), to be translated at display time
  with :func:`translate`. Placeholders are ``%(name)s``.
- The catalogs are ``dashboard/translations/<lang>/LC_MESSAGES/messages.po``
  (``pybabel extract/update``, see docs/ARCHITECTURE.md). They are compiled
  in memory when the app is built: no ``.mo`` file to forget or to keep in
  step; an entry marked fuzzy or left empty shows in English, and
  tests/test_i18n.py fails naming it.
- The language of a request: the signed-in user's choice (the navbar's
  switch, ``staff_users.language``), else DEFAULT_LANGUAGE; for a visitor
  who is not signed in (the sign-in page), the browser's Accept-Language.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dash
import flask
import flask_babel
from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations
from flask import has_app_context, has_request_context, request
from flask_login import current_user

from db.i18n import N_, Message, Number
from db.models import LANGUAGES

log = logging.getLogger("dashboard.i18n")

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
DOMAIN = "messages"
SOURCE_LANGUAGE = "en"  # the msgids are English
LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}  # each in its own language

__all__ = ["N_", "_", "LANGUAGES", "current_language", "error_text", "init_i18n", "ngettext",
           "translate"]


def _(msgid: str, /, **params: Any) -> str:
    """The text of ``msgid`` in the request's language, ``%(name)s`` filled."""
    return flask_babel.gettext(msgid, **params)


def ngettext(singular: str, plural: str, n: int, /, **params: Any) -> str:
    """``%(num)s`` is ``n``; the form follows the language's plural rules
    (Russian has three)."""
    return flask_babel.ngettext(singular, plural, n, **params)


def translate(text: Any) -> Any:
    """A message made elsewhere, in the request's language: a :class:`Message`
    (``N_``) by its msgid and parameters; a plain string looked up as a
    msgid (unchanged when the catalog does not have it); anything else as it is."""
    if isinstance(text, Message):
        params = {k: translate(v) for k, v in text.params.items()}
        return flask_babel.gettext(text.msgid, **params)
    if isinstance(text, str) and text:
        return flask_babel.gettext(text)  # no parameters: a "%" stays as it is
    if isinstance(text, Number):  # grouped the language's way (as dashboard.format.points)
        if current_language() == "ru":
            return format_decimal(int(text), format="#,##0", locale=locale_of("ru"))
        return str(text)
    return text


def error_text(exc: BaseException) -> str:
    """What a service's refusal says, in the request's language: a bad
    field's message (``ValidationError.message``; every field's, one per
    line, for ``FormErrors``), else the exception's message (a
    :class:`Message` from ``N_`` is translated, plain text shown as it is)."""
    problems = getattr(exc, "problems", None)
    if isinstance(problems, dict) and len(problems) > 1:
        return "\n".join(translate(m) for m in problems.values())
    message = getattr(exc, "message", None)
    if message is None:
        message = exc.args[0] if len(exc.args) == 1 else str(exc)
    return translate(message) if isinstance(message, str) else str(exc)


def current_language() -> str:
    """'en' or 'ru': the language of this request, or of the background job
    (its user's, see :func:`dashboard.jobs.job_actor`); English elsewhere."""
    if not has_app_context():
        return SOURCE_LANGUAGE
    locale = flask_babel.get_locale()
    return locale.language if locale is not None and locale.language in LANGUAGES \
        else SOURCE_LANGUAGE


# ------------------------------------------------------------------ catalogs


def catalog_paths() -> dict[str, Path]:
    """The ``.po`` file of every language the app translates into."""
    return {
        lang: TRANSLATIONS / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        for lang in LANGUAGES
        if lang != SOURCE_LANGUAGE
    }


def compile_catalog(po_path: Path) -> Translations:
    """A ``.po`` file compiled in memory (fuzzy entries left out, as msgfmt does)."""
    with po_path.open("rb") as f:
        catalog = read_po(f, locale=po_path.parent.parent.name, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


class CatalogDomain(flask_babel.Domain):
    """Flask-Babel's domain, reading the catalogs compiled at start-up
    instead of ``.mo`` files."""

    def __init__(self, catalogs: dict[str, Translations]) -> None:
        super().__init__(domain=DOMAIN)
        self.catalogs = catalogs

    def get_translations(self) -> Translations | NullTranslations:
        locale = flask_babel.get_locale() if has_app_context() else None
        if locale is None:
            return NullTranslations()
        return self.catalogs.get(locale.language) or NullTranslations()


# ------------------------------------------------------------------ the request's language


def select_language(default: str) -> str:
    """The signed-in user's choice, else ``default``; before sign-in, the
    browser's preferred language among ours, else ``default``. Outside a
    request: English, unless a job forced its user's (``force_locale``)."""
    if not has_request_context():
        return SOURCE_LANGUAGE
    try:
        user = current_user if current_user.is_authenticated else None
    except Exception:  # noqa: BLE001 - no user loader yet (very early errors)
        user = None
    if user is not None:
        chosen = getattr(user, "language", None)
        return chosen if chosen in LANGUAGES else default
    return request.accept_languages.best_match(LANGUAGES) or default


def html_lang(index: Callable[..., str]) -> Callable[..., str]:
    """Dash's page template with ``<html lang="…">`` of the request."""

    def interpolate_index(**kwargs: Any) -> str:
        page = index(**kwargs)
        lang = current_language() if has_request_context() else SOURCE_LANGUAGE
        return page.replace("<html>", f'<html lang="{lang}">', 1)

    return interpolate_index


def translated_titles() -> None:
    """Each page's title (the browser tab) in the request's language."""
    for page in dash.page_registry.values():
        title = page.get("title")
        if isinstance(title, str):
            page["title"] = _title(title)


def _title(title: str) -> Callable[..., str]:
    def title_now(**_kw: Any) -> str:
        return translate(title)

    title_now.msgid = title  # type: ignore[attr-defined]
    return title_now


def init_i18n(server: flask.Flask, app: dash.Dash, default_language: str) -> None:
    """Flask-Babel on ``server`` with the compiled catalogs; the language
    per request; ``<html lang>`` on Dash's page and the page titles."""
    catalogs = {lang: compile_catalog(path) for lang, path in catalog_paths().items()
                if path.exists()}
    missing = sorted(set(catalog_paths()) - set(catalogs))
    if missing:
        log.warning("no catalog for %s: those pages show in English", ", ".join(missing))
    server.config["BABEL_DEFAULT_LOCALE"] = SOURCE_LANGUAGE
    babel = flask_babel.Babel(
        server, locale_selector=lambda: select_language(default_language),
        configure_jinja=True,
    )
    babel.domain_instance = CatalogDomain(catalogs)  # type: ignore[misc]
    app.interpolate_index = html_lang(app.interpolate_index)  # type: ignore[method-assign]
    translated_titles()


def locale_of(language: str) -> Locale:
    """The babel locale of a language of the app: 'ru' -> ru_RU, 'en' -> en."""
    return Locale.parse("ru_RU" if language == "ru" else language)
