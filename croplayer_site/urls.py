"""URL map: pages, the REST API (+ OpenAPI schema and docs), admin, login/logout."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from croplayer_site import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    # Pages link their icon; this answers the browsers and pages (admin, API docs) that ask anyway.
    path("favicon.ico", RedirectView.as_view(url=static("croplayer/favicon.svg"), permanent=True)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("annotation.urls")),
    path("api/", include("annotation.transfer_urls")),
    path("api/", include("mapping.urls")),
    path("api/", include("learning.urls")),
    path("", include("annotation.page_urls")),
    path("", include("mapping.page_urls")),
    path("", include("learning.product.urls")),  # integration review, exports (API + pages)
    path("", include("learning.product.compare_urls")),
    path("", include("learning.page_urls")),
]

# Error pages with the site's navigation (JSON under /api/); see croplayer_site/errors.py.
handler400 = "croplayer_site.errors.bad_request"
handler403 = "croplayer_site.errors.permission_denied"
handler404 = "croplayer_site.errors.page_not_found"
handler500 = "croplayer_site.errors.server_error"
