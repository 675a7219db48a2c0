from common.api import api_path

from . import apis

urlpatterns = [
    *api_path("auth/login", apis.LoginApi.as_view(), "api-login"),
    *api_path("auth/refresh-token", apis.RefreshTokenApi.as_view(), "api-refresh-token"),
    *api_path("auth/logout", apis.LogoutApi.as_view(), "api-logout"),
    *api_path("auth/me", apis.MeApi.as_view(), "api-me"),
    *api_path("auth/password", apis.PasswordChangeApi.as_view(), "api-password"),
    *api_path("users", apis.UserListApi.as_view(), "api-users"),
    *api_path("users/online", apis.UserOnlineApi.as_view(), "api-users-online"),
    *api_path("users/<int:pk>", apis.UserDetailApi.as_view(), "api-user"),
    *api_path("api-keys", apis.ApiKeyListApi.as_view(), "api-keys"),
    *api_path("api-keys/<int:pk>", apis.ApiKeyDetailApi.as_view(), "api-key"),
]
