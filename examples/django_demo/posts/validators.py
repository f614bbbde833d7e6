"""Image upload validation without Pillow.

Checking the extension alone would let anyone upload e.g. HTML named
``x.png``; since Nginx serves uploads directly, we also check the file's
magic bytes. SVG is refused on purpose: it can carry scripts.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.validators import FileExtensionValidator
from django.template.defaultfilters import filesizeformat
from django.utils.deconstruct import deconstructible

IMAGE_EXTENSIONS = ["png", "jpg", "jpeg", "gif", "webp"]

# Uploaded images are capped at 5 MB. The front-end proxy's request-body limit
# must be a little larger than this (multipart overhead + the text field).
IMAGE_MAX_BYTES = 5 * 1024 * 1024

validate_image_extension = FileExtensionValidator(allowed_extensions=IMAGE_EXTENSIONS)


def _looks_like(ext: str, head: bytes) -> bool:
    if ext == "png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if ext in ("jpg", "jpeg"):
        return head.startswith(b"\xff\xd8\xff")
    if ext == "gif":
        return head.startswith((b"GIF87a", b"GIF89a"))
    if ext == "webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    return False


@deconstructible
class MaxFileSizeValidator:
    """Reject files larger than ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def __call__(self, value: File) -> None:
        if value.size is not None and value.size > self.max_bytes:
            raise ValidationError(
                "The file is too large (%(size)s); the limit is %(limit)s.",
                code="file_too_large",
                params={
                    "size": filesizeformat(value.size),
                    "limit": filesizeformat(self.max_bytes),
                },
            )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MaxFileSizeValidator) and other.max_bytes == self.max_bytes


def validate_image_content(value: File) -> None:
    """Check that the file's first bytes match its (already validated) extension."""
    ext = value.name.rsplit(".", 1)[-1].lower() if "." in value.name else ""
    if ext not in IMAGE_EXTENSIONS:
        return  # the extension validator reports this case
    pos = value.tell() if hasattr(value, "tell") else 0
    value.seek(0)
    head = value.read(16)
    value.seek(pos)
    if not _looks_like(ext, head):
        raise ValidationError(
            "The file content does not look like a .%(ext)s image.",
            code="invalid_image",
            params={"ext": ext},
        )
