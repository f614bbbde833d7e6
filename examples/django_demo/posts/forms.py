from __future__ import annotations

from django import forms

from .models import Post
from .validators import IMAGE_EXTENSIONS


class PostForm(forms.ModelForm):
    class Meta:
        model = Post
        fields = ["body", "image"]
        widgets = {
            "body": forms.Textarea(attrs={"rows": 4, "placeholder": "What's new?"}),
            # Only a hint for the browser's file picker; the server validates.
            "image": forms.ClearableFileInput(
                attrs={"accept": ",".join(f".{ext}" for ext in IMAGE_EXTENSIONS)}
            ),
        }
