"""The plain-Flask pages (login, sign-out, and the error page for non-Dash routes).

Kept as Jinja strings in a module so they ship with the package without
package-data configuration; they use the locally served Bootstrap CSS.
Their texts are Jinja gettext calls (Flask-Babel installs ``_`` in Jinja):
babel.cfg has pybabel read this file as a Jinja template.
"""

from __future__ import annotations

_HEAD = """<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · {{ _("Loyalty back-office") }}</title>
<link rel="icon" href="/favicon.ico">
<link rel="stylesheet" href="/assets/vendor/bootstrap.min.css">
</head>
"""

LOGIN = (
    _HEAD
    + """<body class="bg-light">
<main class="container" style="max-width: 26rem; margin-top: 12vh;">
  <h1 class="h4 mb-3">{{ _("Loyalty back-office") }}</h1>
  <div class="card shadow-sm"><div class="card-body">
  <h2 class="h5 card-title mb-3">{{ _("Sign in") }}</h2>
  {% if notice %}<div class="alert alert-info py-2" role="status">{{ notice }}</div>{% endif %}
  {% if error %}
  <div class="alert alert-danger py-2" role="alert" id="login-error">{{ error }}</div>
  {% endif %}
  <form method="post" action="/login" autocomplete="off">
    <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
    <input type="hidden" name="next" value="{{ next }}">
    <div class="mb-3">
      <label class="form-label" for="username">{{ _("Username") }}</label>
      <input class="form-control" id="username" name="username" value="{{ username }}"
             autocomplete="username" required autofocus>
    </div>
    <div class="mb-3">
      <label class="form-label" for="password">{{ _("Password") }}</label>
      <input class="form-control" id="password" name="password" type="password"
             autocomplete="current-password" required>
    </div>
    <button class="btn btn-primary w-100" id="login-submit" type="submit">
      {{ _("Sign in") }}</button>
  </form>
  </div></div>
</main>
</body>
</html>
"""
)

LOGOUT = (
    _HEAD
    + """<body class="bg-light">
<main class="container" style="max-width: 26rem; margin-top: 12vh;">
  <h1 class="h4 mb-3">{{ _("Sign out of the loyalty back-office?") }}</h1>
  <form method="post" action="/logout">
    <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
    <button class="btn btn-primary" id="logout-submit" type="submit">{{ _("Sign out") }}</button>
    <a class="btn btn-link" href="/">{{ _("Stay signed in") }}</a>
  </form>
</main>
</body>
</html>
"""
)

ERROR = (
    _HEAD
    + """<body class="bg-light">
<main class="container" style="max-width: 34rem; margin-top: 12vh;">
  <h1 class="h3">{{ title }}</h1>
  <p class="lead">{{ message }}</p>
  <a class="btn btn-primary" href="/">{{ _("Back to the back-office") }}</a>
</main>
</body>
</html>
"""
)
