from common.api import api_path

from . import apis

urlpatterns = [
    *api_path(
        "webhook-subscriptions", apis.SubscriptionListApi.as_view(), "api-webhook-subscriptions"
    ),
    *api_path(
        "webhook-subscriptions/<int:pk>",
        apis.SubscriptionDetailApi.as_view(),
        "api-webhook-subscription",
    ),
    *api_path(
        "webhook-subscriptions/<int:pk>/deliveries",
        apis.SubscriptionDeliveryListApi.as_view(),
        "api-webhook-subscription-deliveries",
    ),
    *api_path(
        "webhook-deliveries/<uuid:pk>/redeliver",
        apis.DeliveryRedeliverApi.as_view(),
        "api-webhook-delivery-redeliver",
    ),
    *api_path("webhook-event-types", apis.EventTypesApi.as_view(), "api-webhook-event-types"),
]
