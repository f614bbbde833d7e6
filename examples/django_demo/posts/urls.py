from django.urls import path

from . import views

urlpatterns = [
    path("", views.post_list, name="home"),
    path("posts/new/", views.post_create, name="post-create"),
    path("accounts/register/", views.register, name="register"),
]
