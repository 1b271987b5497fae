from __future__ import annotations

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/django_tasks_database/dbtaskresult/overview/")),
    path("admin/", admin.site.urls),
]
