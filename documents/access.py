"""Who may do what to a document.

Roles, weakest first: ``read`` (view it), ``write`` (also replace its content), ``owner`` (also
rename, delete, publish and share it). ``role_for`` answers ``None`` when the user may not even
know the document exists; the API then answers 404, never 403.

- The owner has ``owner``.
- A collaborator has the role the owner gave them (``read`` or ``write``).
- Staff may read every document (to help and to moderate), and change none through the API;
  they change documents, owners and visibility in the Django admin.
- Anyone, even anonymous, may read a public document, and a secret-link document when they
  present its key.
"""

from __future__ import annotations

import hmac
from typing import Literal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from documents.models import Collaborator, Document, Visibility

RoleName = Literal["read", "write", "owner"]
RANK = {None: 0, "read": 1, "write": 2, "owner": 3}


def role_for(user: AbstractBaseUser | AnonymousUser, document: Document, *, key: str | None = None) -> RoleName | None:
    """The strongest role ``user`` has on ``document`` (``key``: a secret link's key, if given)."""
    if user.is_authenticated:
        if document.owner_id == user.pk:
            return "owner"
        shared = Collaborator.objects.filter(document_id=document.pk, user_id=user.pk).values_list("role", flat=True).first()
        if shared:
            return shared
        if user.is_staff:
            return "read"
    if document.visibility == Visibility.PUBLIC:
        return "read"
    if document.visibility == Visibility.SECRET and key and document.secret_key:
        if hmac.compare_digest(document.secret_key.encode(), key.encode()):
            return "read"
    return None


def allows(role: RoleName | None, needed: RoleName) -> bool:
    return RANK[role] >= RANK[needed]
