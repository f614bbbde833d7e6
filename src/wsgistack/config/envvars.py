"""Environment variable names: ours (``WSGISTACK_*``) and the aliases users bring from the seeds.

Aliases are applied in list order, so a later, more specific name wins over an earlier,
generic one (``UWSGI_PROCESSES`` over ``WEB_CONCURRENCY``); ``WSGISTACK_*`` wins over all.
"""

from __future__ import annotations

PREFIX = "WSGISTACK_"
NESTED = "__"

# (environment variable, dotted config key) — generic first, specific last.
ALIASES: tuple[tuple[str, str], ...] = (
    ("LISTEN_PORT", "server.port"),  # tiangolo/uwsgi-nginx images
    ("PORT", "server.port"),  # Heroku, Cloud Run, most PaaS
    ("NGINX_SERVER_NAME", "server.server_names"),  # seed 002
    ("NGINX_MAX_UPLOAD", "server.max_body_size"),  # tiangolo
    ("WEB_CONCURRENCY", "uwsgi.processes"),  # Heroku's sizing hint
    ("UWSGI_PROCESSES", "uwsgi.processes"),  # seed 002
    ("UWSGI_THREADS", "uwsgi.threads"),
    ("UWSGI_URI", "uwsgi.uri"),  # seed 004: the web role's upstream
    ("DJANGO_SETTINGS_MODULE", "app.django_settings"),
)


# WSGISTACK_* variables that are not settings: read before the config can be (it lives there).
NOT_SETTINGS = frozenset({"WSGISTACK_PROJECT_DIR"})


def env_name(dotted: str) -> str:
    """``uwsgi.processes`` -> ``WSGISTACK_UWSGI__PROCESSES``."""
    return PREFIX + dotted.upper().replace(".", NESTED)


def dotted_from_env(name: str) -> str:
    """``WSGISTACK_UWSGI__PROCESSES`` -> ``uwsgi.processes``."""
    return name[len(PREFIX) :].lower().replace(NESTED, ".")


def aliases_for(dotted: str) -> list[str]:
    return [env for env, key in ALIASES if key == dotted]
