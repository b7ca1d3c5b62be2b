from django.urls import path

from accounts import api

urlpatterns = [
    path("auth/register/", api.Register.as_view(), name="auth-register"),
    path("auth/login/", api.Login.as_view(), name="auth-login"),
    path("auth/logout/", api.Logout.as_view(), name="auth-logout"),
    path("account/", api.Account.as_view(), name="account"),
    path("tokens/", api.TokenList.as_view(), name="token-list"),
    path("tokens/<int:pk>/", api.TokenDetail.as_view(), name="token-detail"),
]
