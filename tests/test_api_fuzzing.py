"""schemathesis sends requests generated from the OpenAPI schema, valid and invalid, to every
operation: no answer is a server error or breaks the schema, in either mode."""

import hashlib

import numpy as np
import pytest
import schemathesis
from django.contrib.auth.models import Group
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from accounts.tokens import authenticate_token, create_token
from bokehsite import wire
from datasets import services as dataset_services
from datasets.models import Dataset
from documents.models import Document
from tests.conftest import make_user
from tests.helpers import store

pytestmark = pytest.mark.django_db(transaction=True)  # the WSGI app commits and closes its connection

EXAMPLES = 6  # per operation and generation mode: bounded, so that the whole run stays well under a minute
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# A bundle is binary: schemathesis sends the bytes it generates as they are.
schemathesis.serializer.alias(wire.CONTENT_TYPE, "application/octet-stream")
schemathesis.serializer.alias("application/zip", "application/octet-stream")  # an account zip, likewise


class Fixtures:
    """Real things for the path to name, made again whenever a request took them away."""

    def __init__(self, owner, multi_user: bool):
        self.owner = owner
        self.multi_user = multi_user
        self.collaborator = make_user("bob")
        self.group = Group.objects.create(name="team")
        self.token = None

    def document_id(self) -> str:
        document = Document.objects.filter(owner=self.owner).first()
        return str((document or store(self.owner, "fuzzed")).id)

    def token_id(self) -> int:
        return create_token(self.owner, "listed")[0].id

    def dataset_id(self) -> str:
        dataset = Dataset.objects.usable_by(self.owner).first()
        if dataset is None:
            upload = dataset_services.start_upload(self.owner, "fuzzed", [{"name": "x", "dtype": "float64", "length": 3},
                                                                          {"name": "y", "dtype": "float64", "length": 3}])
            data = np.arange(3.0).tobytes()
            for column in ("x", "y"):  # a line: views of it can be drawn
                dataset_services.receive_chunk(upload, column, 0, data, hashlib.sha256(data).hexdigest())
            dataset = dataset_services.finish_upload(upload)
        return str(dataset.id)

    def upload_id(self) -> str:
        upload = Dataset.objects.uploads_of(self.owner).first()
        upload = upload or dataset_services.start_upload(self.owner, "fuzzing", [{"name": "x", "dtype": "float64",
                                                                                  "length": 3}])
        return str(upload.id)

    def prepare(self, case) -> dict[str, str]:
        """Point the case's path at real things; the headers that authenticate it."""
        parameters = case.path_parameters or {}
        if "id" in parameters:
            if case.path.startswith("/api/tokens/"):
                parameters["id"] = self.token_id()
            elif case.path.startswith("/api/datasets/uploads/"):
                parameters["id"] = self.upload_id()
            elif case.path.startswith("/api/datasets/"):
                parameters["id"] = self.dataset_id()
            else:
                parameters["id"] = self.document_id()
        if "username" in parameters:
            parameters["username"] = self.collaborator.username
        if "name" in parameters:
            parameters["name"] = self.group.name
        if not self.multi_user:
            return {}
        if self.token is None or authenticate_token(self.token) is None:  # logging out revokes it
            self.token = create_token(self.owner, "fuzzing")[1]
        return {"Authorization": f"Token {self.token}"}


def fuzz(fixtures: Fixtures) -> tuple[list[str], dict[str, set[int]]]:
    """Every operation's findings, and the statuses each operation answered with."""
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    findings, statuses = [], {}
    for result in schema.get_all_operations():
        operation = result.ok()
        answered = statuses.setdefault(operation.label, set())
        strategy = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                             operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

        @given(case=strategy)
        @hypothesis_settings(max_examples=2 * EXAMPLES, deadline=None, database=None, derandomize=True,
                             phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def send(case):
            headers = fixtures.prepare(case)
            response = case.call(headers=headers)
            answered.add(response.status_code)
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            send()
        except Exception as e:  # collect every operation's finding, then report them all
            findings.append(f"{operation.label}: {e}")
    return findings, statuses


def assert_within_the_schema(findings: list[str], statuses: dict[str, set[int]]) -> None:
    assert not findings, "\n\n".join(findings)
    # It reached the real things: every read answered 200 at least once (but the changes since a
    # version, which only a `since` of 1 finds on a new document).
    reads = {label: answered for label, answered in statuses.items() if label.startswith("GET ")}
    assert len(reads) == 18, reads  # with GET /api/account/
    assert all(200 in answered for label, answered in reads.items() if not label.endswith("/events/")), reads


@pytest.fixture(autouse=True)
def _no_drawing(settings):
    """PNG and SVG exports answer 501 here: starting Chromium for each generated request would
    take most of the run (tests/test_export_browser.py draws them)."""
    settings.BOKEHSITE_CHROMIUM = "/nonexistent/chromium"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Logging in hashes the password: with the production hasher, most of the run would be that."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.timeout(100)
def test_single_user_mode_answers_every_generated_request_within_the_schema(alice, dataset_dir):
    from accounts.users import default_user

    assert_within_the_schema(*fuzz(Fixtures(default_user(), multi_user=False)))


@pytest.mark.timeout(100)
def test_multi_user_mode_answers_every_generated_request_within_the_schema(multi_user, alice, dataset_dir):
    assert_within_the_schema(*fuzz(Fixtures(alice, multi_user=True)))
