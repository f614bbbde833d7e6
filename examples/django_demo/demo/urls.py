from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import ops_views

urlpatterns = [
    # Ops endpoints: no trailing slash, no DB, no session.
    path("healthz", ops_views.healthz, name="healthz"),
    path("hello", ops_views.hello, name="hello"),
    path("slow", ops_views.slow, name="slow"),
    path("whoami", ops_views.whoami, name="whoami"),
    path("upload-size", ops_views.upload_size, name="upload-size"),
    # Only login/logout from django.contrib.auth: the password-reset views
    # would need an outgoing mail setup the demo does not have.
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("posts.urls")),
]

# In production Nginx serves /media/ directly; this only helps `runserver`
# with DJANGO_DEBUG=1 (static() returns no patterns when DEBUG is off).
urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
