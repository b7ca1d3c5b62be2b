"""Faults with real processes (``tests/faults.py``): two Daphnes on a PostgreSQL and a Redis of
this module's own, behind round-robin TCP balancers, a producer streaming and viewers on both. A
Daphne is killed with ``kill -9``, Redis and PostgreSQL are stopped and started again, the
channel layer drops messages; nothing acknowledged is lost, nothing is applied twice, and every
viewer ends with the server's document.
"""

from __future__ import annotations

import asyncio

import pytest

from bokehsite.client.outbox import MAX_IN_FLIGHT
from tests import faults
from tests.faults import Outcome

pytestmark = [pytest.mark.faults, pytest.mark.daphne, pytest.mark.timeout(150)]


@pytest.fixture(scope="module")
def services():
    with faults.services_for_tests() as running:
        yield running


@pytest.fixture
def cluster(services, request):
    with faults.cluster(*services, getattr(request, "param", None)) as running:
        yield running
        if "kill" not in request.node.name:  # a killed process's neighbours log nothing untoward either
            for log in running.logs():
                assert "Traceback" not in log, log[-3000:]


def check(outcome: Outcome) -> None:
    assert (outcome.lost, outcome.repeated, outcome.diverged) == (0, 0, 0), outcome
    assert outcome.notes["in order"] and outcome.notes["stored is the script's"], outcome


def test_kill_9_of_the_producers_process_with_unacknowledged_changes_loses_nothing(cluster):
    outcome = asyncio.run(faults.kill_9(cluster))
    check(outcome)
    assert outcome.notes["stored, not acknowledged"] >= MAX_IN_FLIGHT  # the window this is about did happen


def test_a_follower_idle_for_a_minute_on_redis_stays_connected(cluster):
    outcome = asyncio.run(faults.idle_minute(cluster))
    check(outcome)
    assert outcome.seen.reconnects == 0 and not outcome.seen.errors


def test_a_redis_restart_mid_stream_loses_nothing(cluster):
    check(asyncio.run(faults.redis_restart(cluster)))


def test_stopping_postgresql_gives_clear_errors_and_recovers_by_itself(cluster):
    outcome = asyncio.run(faults.postgres_stop(cluster))
    check(outcome)
    assert outcome.notes["REST write while it was down"] == (503, "unavailable")
    assert outcome.notes["acknowledged while it was down"] == 0


@pytest.mark.parametrize("cluster", [faults.DROPPING], indirect=True)
def test_viewers_that_the_layer_drops_messages_for_catch_up_from_the_log(cluster):
    outcome = asyncio.run(faults.dropped_messages(cluster))
    check(outcome)
    assert outcome.notes["layer dropped messages"]
