from django.urls import path

from . import views

app_name = "botflows"

urlpatterns = [
    path("bot/", views.bot_settings, name="settings"),
    path("bot/settings/", views.bot_settings_save, name="settings_save"),
    path("bot/flows/new/", views.bot_flow_create, name="flow_create"),
    path("bot/flows/<int:pk>/settings/", views.bot_flow_settings, name="flow_settings"),
    path("bot/flows/<int:pk>/delete/", views.bot_flow_delete, name="flow_delete"),
    path("bot/flows/<int:pk>/publish/", views.bot_flow_publish, name="flow_publish"),
    path("bot/flows/<int:pk>/", views.bot_flow_editor, name="flow_editor"),
    path("bot/flows/<int:pk>/nodes/new/", views.bot_node_create, name="node_create"),
    path("bot/flows/<int:pk>/nodes/<int:node_pk>/", views.bot_node_edit, name="node_edit"),
    path(
        "bot/flows/<int:pk>/nodes/<int:node_pk>/delete/",
        views.bot_node_delete,
        name="node_delete",
    ),
    path(
        "bot/flows/<int:pk>/nodes/<int:node_pk>/start/",
        views.bot_node_set_start,
        name="node_set_start",
    ),
    path(
        "bot/flows/<int:pk>/nodes/<int:node_pk>/options/new/",
        views.bot_option_create,
        name="option_create",
    ),
    path("bot/flows/<int:pk>/options/<int:option_pk>/", views.bot_option_edit, name="option_edit"),
    path(
        "bot/flows/<int:pk>/options/<int:option_pk>/delete/",
        views.bot_option_delete,
        name="option_delete",
    ),
    path(
        "bot/flows/<int:pk>/options/<int:option_pk>/move/",
        views.bot_option_move,
        name="option_move",
    ),
    path("bot/c/<int:pk>/context/", views.bot_handoff_context, name="context"),
    path("bot/c/<int:pk>/draft/", views.bot_draft, name="draft"),
]
