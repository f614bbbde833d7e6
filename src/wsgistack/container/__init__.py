"""Container images for a wsgistack project: Dockerfile, build, compose files, heroku.yml.

Rendering here is pure, like :mod:`wsgistack.render`: functions return ``RenderedFile``
values and only the CLI commands write them. The one exception is :mod:`.wheel`, whose job
is to put a wheel of wsgistack itself into the build context (it is not on every index).
"""
