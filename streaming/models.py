"""What the connection limits count, in the database that every server process shares
(``streaming.limits``)."""

from __future__ import annotations

from django.db import models


class ServerProcess(models.Model):
    """A server process that holds connection places: alive while ``expires`` is ahead. Each
    renews its own; the places of a process that stopped renewing (it died) count no more."""

    id = models.UUIDField(primary_key=True)
    expires = models.DateTimeField(db_index=True)


class ConnectionPlace(models.Model):
    """One open websocket of a holder (an account, or an anonymous client address): place
    ``number`` of at most the holder's limit. The unique pair lets no two connections take the
    same place, whichever processes they are in."""

    holder = models.CharField(max_length=80)
    number = models.PositiveIntegerField()
    process = models.UUIDField(db_index=True)  # a ServerProcess, alive or not (no constraint: it may be gone)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["holder", "number"], name="one_connection_a_place")]
