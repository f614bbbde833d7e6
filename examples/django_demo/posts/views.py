from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .forms import PostForm
from .models import Post

PAGE_SIZE = 50


def post_list(request: HttpRequest) -> HttpResponse:
    if settings.POSTS_BACKEND == "cassandra":
        from .cassandra_store import PostModel

        posts = PostModel.latest(PAGE_SIZE)
    else:
        posts = Post.objects.select_related("author")[:PAGE_SIZE]
    return render(request, "posts/post_list.html", {"posts": posts})


@login_required
@require_http_methods(["GET", "POST"])
def post_create(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = PostForm(request.POST, request.FILES)
        if form.is_valid() and settings.POSTS_BACKEND == "cassandra":
            from .cassandra_store import PostModel

            PostModel.create(request.user.get_username(), form.cleaned_data["body"], form.cleaned_data.get("image"))
            messages.success(request, "Post published.")
            return redirect("home")
        if form.is_valid():
            post = form.save(commit=False)
            post.author = request.user
            post.save()
            messages.success(request, "Post published.")
            return redirect("home")
    else:
        form = PostForm()
    return render(request, "posts/post_form.html", {"form": form})


@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    if request.method == "POST":
        form = UserCreationForm(request.POST)
        if form.is_valid():
            user = form.save()
            login(request, user)
            messages.success(request, f"Welcome, {user.username}!")
            return redirect("home")
    else:
        form = UserCreationForm()
    return render(request, "registration/register.html", {"form": form})
