"""Stdlib-only helpers that run outside wsgistack's own process: in the app's interpreter
(:mod:`.probe`, :mod:`.djangochecks`, :mod:`.djangoprestart`, :mod:`.pyfacts`, handed to it as
source with ``python -c``) or as the image's HEALTHCHECK (:mod:`.healthcheck`). They import
nothing of wsgistack (tests/unit/test_layers.py), so they run wherever a Python does."""
