from django.conf import settings
from django.db import models

from accounts import secrets


class ApiToken(models.Model):
    """An API token (``accounts.tokens``), a kind of secret (``accounts.secrets``): only a digest of
    its secret is stored; the secret is shown once, at creation.

    ``prefix`` is the secret's first characters (``bks_`` and eight more): shown in lists so that
    people can tell their tokens apart, and used to find the row before comparing digests.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False, help_text="SHA-256 of the secret, hex.")
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    expires = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked = models.DateTimeField(null=True, blank=True, help_text="When it was revoked; empty while it is valid.")

    class Meta:
        ordering = ["-created"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def is_revoked(self) -> bool:
        return secrets.is_revoked(self)

    @property
    def is_expired(self) -> bool:
        return secrets.has_expired(self)

    @property
    def is_active(self) -> bool:
        return secrets.is_active(self)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created": self.created,
            "last_used": self.last_used,
            "expires": self.expires,
            "revoked": self.revoked,
        }


class AccountLimits(models.Model):
    """What one account may store, when the admin sets it, and what its documents take now
    (``documents.quota`` keeps ``storage_used``; no one else writes it)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True,
                                related_name="limits")
    storage_quota = models.PositiveBigIntegerField(
        null=True, blank=True,
        help_text="Bytes this account's documents may take (snapshots, history, thumbnails). "
                  "Empty: the server's BOKEHSITE_STORAGE_QUOTA; 0: no quota.")
    storage_used = models.BigIntegerField(null=True, blank=True, editable=False,
                                          help_text="Bytes its documents take now; empty until first counted.")

    class Meta:
        verbose_name = "account limits"
        verbose_name_plural = "account limits"

    def __str__(self) -> str:
        return f"limits of {self.user}"


class SsoIdentity(models.Model):
    """The account an identity of an OpenID provider signs in as: its issuer and subject (``sub``),
    which never change, unlike the username or email the provider reports (``accounts.sso``)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created = models.DateTimeField(auto_now_add=True)
    last_login = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="unique_sso_identity")]
        verbose_name = "single sign-on identity"
        verbose_name_plural = "single sign-on identities"

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class SsoGroup(models.Model):
    """Marks a Django group that single sign-on created from a groups claim: only such groups are
    left again when the claim stops naming them; groups an admin made are never left by SSO."""

    group = models.OneToOneField("auth.Group", on_delete=models.CASCADE, primary_key=True, related_name="sso")

    class Meta:
        verbose_name = "group from single sign-on"
        verbose_name_plural = "groups from single sign-on"

    def __str__(self) -> str:
        return str(self.group)
