"""Secrets (API tokens, embed tokens, and any kind to come): minted once, stored as a digest, found
by their prefix, compared whole, expired and revoked the same way."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import secrets, tokens
from accounts.models import ApiToken
from documents import embeds
from documents.exceptions import InvalidEmbedToken
from documents.models import Document, EmbedToken
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

# A kind of its own, stored in the API tokens' table: what a new kind of secret needs is this line.
TEST_KIND = secrets.SecretKind("bkt_", ApiToken)


@pytest.fixture
def erin(db):
    return make_user("erin")


def test_a_minted_secret_has_its_prefix_and_is_stored_only_as_its_digest(erin):
    row, secret = TEST_KIND.mint(user=erin, name="laptop")
    assert secret.startswith("bkt_") and len(secret) == 4 + 43
    stored = ApiToken.objects.values().get(pk=row.pk)
    assert secret not in str(stored)
    assert stored["prefix"] == secret[:12] and stored["digest"] == hashlib.sha256(secret.encode()).hexdigest()
    assert stored["digest"] == secrets.digest(secret)


def test_two_minted_secrets_differ(erin):
    (_, one), (_, two) = TEST_KIND.mint(user=erin, name="a"), TEST_KIND.mint(user=erin, name="b")
    assert one != two and one[:12] != two[:12]


def test_find_returns_the_row_of_the_whole_secret(erin):
    row, secret = TEST_KIND.mint(user=erin, name="laptop")
    assert TEST_KIND.find(secret) == row


def test_find_only_looks_among_the_rows_it_is_given(erin):
    row, secret = TEST_KIND.mint(user=erin, name="laptop")
    assert TEST_KIND.find(secret, ApiToken.objects.select_related("user")).user == erin
    assert TEST_KIND.find(secret, ApiToken.objects.exclude(pk=row.pk)) is None


def test_a_secret_with_a_known_prefix_but_another_ending_is_not_found(erin):
    _, secret = TEST_KIND.mint(user=erin, name="laptop")
    assert TEST_KIND.find(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert TEST_KIND.find(secret + "x") is None
    assert TEST_KIND.find(secret[:12] + "x") is None


def test_a_secret_of_another_kind_is_not_found(erin):
    _, secret = TEST_KIND.mint(user=erin, name="laptop")
    api_token = "bks_" + secret[4:]  # the same characters after another kind's prefix
    assert tokens.API_TOKENS.find(api_token) is None
    assert tokens.API_TOKENS.find(secret) is None
    assert embeds.EMBED_TOKENS.find(secret) is None


@pytest.mark.parametrize("garbage", [None, 42, b"bkt_abcdefghijklmnop", "", "bkt_", "bkt_12345678", "not a secret",
                                     "bkt_" + "a" * 200, "bkt_\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9",
                                     "BKT_abcdefghijklmnopqrstuvwxyz"])
def test_garbage_is_not_found(erin, garbage):
    TEST_KIND.mint(user=erin, name="laptop")
    assert TEST_KIND.find(garbage) is None


def test_revoked_and_expired_rows_are_found_but_not_active(erin):
    revoked, revoked_secret = TEST_KIND.mint(user=erin, name="old")
    TEST_KIND.revoke(revoked)
    expired, expired_secret = TEST_KIND.mint(user=erin, name="short", expires=timezone.now() - timedelta(seconds=1))
    for row, secret in ((revoked, revoked_secret), (expired, expired_secret)):
        found = TEST_KIND.find(secret)
        assert found == row and not secrets.is_active(found)


def test_expiry():
    now = timezone.now()
    row = EmbedToken(expires=None)
    assert not secrets.has_expired(row)
    for expires, expired in ((now - timedelta(seconds=1), True), (now, True), (now + timedelta(seconds=1), False)):
        row.expires = expires
        assert secrets.has_expired(row, now) is expired
        assert secrets.is_active(row, now) is not expired


def test_an_expiry_in_days():
    assert secrets.expires_in(None) is None and secrets.expires_in(0) is None
    expires = secrets.expires_in(30)
    assert abs(expires - (timezone.now() + timedelta(days=30))) < timedelta(seconds=5)


def test_revoking_is_for_good_and_counts_once(erin):
    row, secret = TEST_KIND.mint(user=erin, name="laptop")
    stale = ApiToken.objects.get(pk=row.pk)
    assert TEST_KIND.revoke(row) is True
    assert secrets.is_revoked(row) and ApiToken.objects.get(pk=row.pk).revoked == row.revoked
    assert TEST_KIND.revoke(row) is False
    assert TEST_KIND.revoke(stale) is False  # revoked meanwhile, elsewhere
    assert ApiToken.objects.get(pk=row.pk).revoked == row.revoked
    assert not secrets.is_active(TEST_KIND.find(secret))


def test_api_tokens_stored_before_still_authenticate(erin):
    """Rows written by earlier versions: the prefix and a plain SHA-256 of the secret."""
    secret = "bks_" + "Q" * 43
    ApiToken.objects.create(user=erin, name="old", prefix=secret[:12], digest=hashlib.sha256(secret.encode()).hexdigest())
    assert tokens.user_for_token(secret) == erin


def test_embed_tokens_stored_before_still_authenticate(erin):
    document = Document.objects.create(owner=erin, title="plot")
    secret = "bke_" + "Z" * 43
    row = EmbedToken.objects.create(document=document, prefix=secret[:12], digest=hashlib.sha256(secret.encode()).hexdigest(),
                                    origins=["https://example.org"], expires=timezone.now() + timedelta(days=1))
    assert embeds.lookup(secret) == row
    embeds.revoke(row)
    with pytest.raises(InvalidEmbedToken, match="revoked"):
        embeds.lookup(secret)
