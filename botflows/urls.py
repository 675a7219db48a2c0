from django.urls import path

from . import views

app_name = "botflows"

urlpatterns = [
    path("bot/", views.bot_settings, name="settings"),
    path("bot/settings/<slug:key>/", views.bot_setting_save, name="setting_save"),
    path("bot/flows/<int:pk>/publish/", views.bot_flow_publish, name="flow_publish"),
    path("bot/c/<int:pk>/context/", views.bot_handoff_context, name="context"),
    path("bot/c/<int:pk>/draft/", views.bot_draft, name="draft"),
]
