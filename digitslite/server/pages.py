"""The few HTML pages this server has so far: a home page that says it runs, and the login form."""
from flask import Blueprint, redirect, render_template_string, request

from digitslite import __version__
from digitslite.server.auth import check_csrf, current_identity, login_session, logout_session, safe_next
from digitslite.server.errors import ApiError
from digitslite.server.services import services

pages = Blueprint("pages", __name__)

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>digitslite</title>
<meta name="csrf-token" content="{{ csrf_token() }}"></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>digitslite</h1>
{% block body %}{% endblock %}
</body></html>"""

_HOME = _LAYOUT.replace("{% block body %}{% endblock %}", """
<p>The server is running (version {{ version }}){% if user %}; you are {{ user }}{% endif %}.</p>
<p>Jobs: {{ total }}{% for status, count in counts %} &middot; {{ status }} {{ count }}{% endfor %}</p>
<p>The JSON API is described at <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>;
the list of jobs is at <a href="/api/v1/jobs">/api/v1/jobs</a>.</p>
{% if user %}<form method="post" action="/logout">
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}"><button>Log out</button></form>{% endif %}
""")

_LOGIN = _LAYOUT.replace("{% block body %}{% endblock %}", """
{% if error %}<p role="alert" style="color: #a00">{{ error }}</p>{% endif %}
<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<input type="hidden" name="next" value="{{ next }}">
<p><label>User <input name="username" autocomplete="username" required autofocus></label></p>
<p><label>Password
<input name="password" type="password" autocomplete="current-password" required></label></p>
<p><button>Log in</button></p>
</form>""")


@pages.get("/")
def home():
    counts = sorted(services().index.count_by_status().items())
    identity = current_identity()
    return render_template_string(_HOME, version=__version__, counts=counts, total=sum(n for _, n in counts),
                                  user=identity.name if identity.via == "session" else None)


@pages.route("/login", methods=["GET", "POST"])
def login():
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template_string(_LOGIN, next=target, error=None)
    check_csrf()
    user = services().users.authenticate(request.form.get("username", ""), request.form.get("password", ""))
    if user is None:
        return render_template_string(_LOGIN, next=target, error="Wrong user name or password."), 401
    login_session(user.name)
    return redirect(target)


@pages.post("/logout")
def logout():
    if current_identity().via != "session":
        raise ApiError(400, "there is no session to log out of")
    logout_session()
    return redirect("/login")
