"""Building images: the recipe (Dockerfile, .dockerignore, wsgistack's wheel, the requirement
files) written into the project, ``docker build`` with its errors mapped to ids, and the image's
build step (``wsgistack entrypoint --build-step``). The Dockerfile itself is rendered, purely,
by :mod:`wsgistack.render.dockerfile`."""
