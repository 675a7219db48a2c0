from django.urls import path

from . import contact_views, start_views, views

app_name = "conversations"

urlpatterns = [
    path("", views.console, name="console"),
    path("inbox/", views.inbox, name="inbox"),
    path("board/", views.board, name="board"),
    path("new/", start_views.conversation_new, name="new"),
    path("contacts/", contact_views.contact_list, name="contacts"),
    path("contacts/<int:pk>/", contact_views.contact_detail, name="contact"),
    path("contacts/<int:pk>/edit/", contact_views.contact_update, name="contact_update"),
    path("contacts/<int:pk>/tags/", contact_views.contact_tags, name="contact_tags"),
    path("quick-replies/", contact_views.quick_reply_list, name="quick_replies"),
    path("quick-replies/<int:pk>/", contact_views.quick_reply_edit, name="quick_reply_edit"),
    path(
        "quick-replies/<int:pk>/delete/",
        contact_views.quick_reply_delete,
        name="quick_reply_delete",
    ),
    path("c/<int:pk>/", views.conversation_detail, name="detail"),
    path("c/<int:pk>/messages/", views.conversation_messages, name="messages"),
    path("c/<int:pk>/header/", views.conversation_header, name="header"),
    path("c/<int:pk>/read/", views.conversation_read, name="read"),
    path("c/<int:pk>/send/", views.conversation_send, name="send"),
    path("c/<int:pk>/note/", views.conversation_note, name="note"),
    path("c/<int:pk>/template/", views.conversation_send_template, name="send_template"),
    path("c/<int:pk>/m/<int:message_pk>/retry/", views.message_retry, name="retry"),
    path("c/<int:pk>/m/<int:message_pk>/react/", views.message_react, name="react"),
    path(
        "c/<int:pk>/m/<int:message_pk>/cancel/",
        views.message_cancel_scheduled,
        name="cancel_scheduled",
    ),
    path("c/<int:pk>/take-over/", views.conversation_take_over, name="take_over"),
    path("c/<int:pk>/transfer/", views.conversation_transfer, name="transfer"),
    path("c/<int:pk>/organise/", views.conversation_organise, name="organise"),
    path("c/<int:pk>/close/", views.conversation_close, name="close"),
    path("c/<int:pk>/reopen/", views.conversation_reopen, name="reopen"),
]
