from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from accounts import tokens
from accounts.models import AccountLimits, ApiToken, SsoGroup, SsoIdentity


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are listed and revoked here; the secret is never stored, so never shown.

    Admins do not create tokens here: a token's secret must reach its user, so users create
    their own (API, tokens page or ``Session.login``).
    """

    list_display = ["prefix", "name", "user", "created", "last_used", "expires", "state"]
    list_filter = ["revoked", "expires"]
    search_fields = ["prefix", "name", "user__username"]
    list_select_related = ["user"]
    readonly_fields = ["prefix", "user", "created", "last_used", "revoked"]
    fields = ["name", "prefix", "user", "created", "last_used", "expires", "revoked"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="State")
    def state(self, token: ApiToken) -> str:
        if token.is_revoked:
            return "revoked"
        return "expired" if token.is_expired else "active"

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        active = list(queryset.filter(revoked__isnull=True))
        for token in active:
            tokens.revoke_token(token)
        count = len(active)
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


class AccountLimitsInline(admin.StackedInline):
    """An account's own storage quota, set here, and what its documents take."""

    model = AccountLimits
    can_delete = False
    fields = ["storage_quota", "storage_used"]
    readonly_fields = ["storage_used"]
    verbose_name_plural = "limits"


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserWithLimitsAdmin(UserAdmin):
    inlines = [*UserAdmin.inlines, AccountLimitsInline]


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    """Which account each identity of the OpenID provider signs in as: made by its first sign-in,
    or here, to give an existing account (one with a password, say) its identity at the provider."""

    list_display = ["subject", "issuer", "user", "created", "last_login"]
    search_fields = ["subject", "user__username"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]

    def get_readonly_fields(self, request, obj=None):
        # An identity's issuer and subject never change: a new one is another identity.
        return ["issuer", "subject", "created", "last_login"] if obj else ["created", "last_login"]


@admin.register(SsoGroup)
class SsoGroupAdmin(admin.ModelAdmin):
    """Groups single sign-on created: each sign-in leaves those its groups claim no longer names.
    Deleting the mark here makes a group the admin's own (never left by a sign-in)."""

    list_display = ["group"]
    search_fields = ["group__name"]

    def has_add_permission(self, request) -> bool:
        return False
