"""wsgistack: run any Python WSGI app behind Nginx + uWSGI with secure, measured defaults."""

__version__ = "0.1.0"
