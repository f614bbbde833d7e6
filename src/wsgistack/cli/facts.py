"""The project's facts for compose files and manifests, or a refusal: a file that leaves out
the volumes of the directories the app writes (STATIC_ROOT, uploads) cannot start in a
read-only image, so an app that cannot be detected here is an error, with the ways out."""

from __future__ import annotations

import os
from pathlib import Path

from wsgistack import ids
from wsgistack.cli.console import note
from wsgistack.errors import WsgistackError
from wsgistack.plan.image import ProjectFacts


def manifest_facts(path: Path, *, no_detect: bool, image: str) -> ProjectFacts:
    """project_facts, with the built image's own record when the app cannot be imported here;
    docker.E015 when neither knows the app (``no_detect``: the user says it writes nothing)."""
    from wsgistack.image.inspect import build_record
    from wsgistack.start import project_facts

    facts = project_facts(path, os.environ, detect_app_dirs=not no_detect, image_record=lambda: build_record(image))
    for line in facts.notes:
        note(line)
    if not no_detect and not facts.detected and facts.error is not None:
        raise WsgistackError(
            ids.DOCKER_E015,
            "the app cannot be imported here, so the directories it writes (STATIC_ROOT, MEDIA_ROOT, uploads) are "
            "unknown: without their volumes the containers could not start (the image's code directory is read-only)",
            "give its settings what they need in this shell (the variable the error below names), or build the image "
            f"first with `wsgistack build -t {image}` (its own Python finds them, and this command reads its record), "
            "or pass --no-detect if the app writes nothing inside the project",
            details=facts.error,
        )
    return facts
