from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.views import admin_login
from bokehsite.views import healthz, metrics_view, operator_health

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/health/", operator_health, name="operator-health"),
    path("admin/login/", admin_login),  # before the admin's own: passwords may be off
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("documents.api_urls")),
    path("api/", include(("accounts.api_urls", "api"), namespace="accounts-api")),
    path("api/", include("datasets.api_urls")),
    path("api/", include("appserver.api_urls")),
    path("accounts/", include("accounts.urls")),
    path("oidc/", include("accounts.oidc_urls")),
    path("apps/", include("appserver.urls")),
    path("", include("documents.urls")),
]
handler404 = "bokehsite.views.page_not_found"
handler500 = "bokehsite.views.server_error"
