from __future__ import annotations

from django.conf import settings
from django.db import models

from .validators import (
    IMAGE_MAX_BYTES,
    MaxFileSizeValidator,
    validate_image_content,
    validate_image_extension,
)


class Post(models.Model):
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="posts"
    )
    body = models.TextField(max_length=2000)
    # A FileField rather than ImageField so the demo does not need Pillow;
    # the validators restrict it to real, reasonably small images.
    image = models.FileField(
        upload_to="posts/%Y/%m/",
        blank=True,
        validators=[
            validate_image_extension,
            MaxFileSizeValidator(IMAGE_MAX_BYTES),
            validate_image_content,
        ],
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.author} @ {self.created_at:%Y-%m-%d %H:%M}: {self.body[:40]}"
