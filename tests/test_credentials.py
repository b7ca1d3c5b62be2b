"""Credentials: what a request or a websocket presents, read in one place, the same way for both."""

import pytest
from django.test import RequestFactory
from rest_framework.request import Request

from accounts.credentials import Credentials

factory = RequestFactory()


def scope(headers=(), query=b""):
    return {"type": "websocket", "headers": list(headers), "query_string": query}


@pytest.mark.parametrize("header", ["Token bks_abc", "Bearer bks_abc", "bearer bks_abc", "TOKEN bks_abc",
                                    "Token   bks_abc"])
def test_an_api_token_in_the_authorization_header(header):
    for credentials in (Credentials.from_request(factory.get("/", HTTP_AUTHORIZATION=header)),
                        Credentials.from_scope(scope([(b"authorization", header.encode())]))):
        assert credentials.api_token == "bks_abc"
        assert credentials.names_api_token and credentials.authorization == header


@pytest.mark.parametrize("header", ["Token", "Bearer", "Token bks_abc extra", "Token "])
def test_a_token_scheme_without_one_secret_names_a_token_but_carries_none(header):
    credentials = Credentials.from_request(factory.get("/", HTTP_AUTHORIZATION=header))
    assert credentials.names_api_token and credentials.api_token is None


@pytest.mark.parametrize("header", ["Basic YWxpY2U6cGFzcw==", "bks_abc", "Tokens bks_abc", "Digest x"])
def test_another_scheme_carries_no_api_token(header):
    for credentials in (Credentials.from_request(factory.get("/", HTTP_AUTHORIZATION=header)),
                        Credentials.from_scope(scope([(b"authorization", header.encode())]))):
        assert credentials.authorization == header
        assert not credentials.names_api_token and credentials.api_token is None


@pytest.mark.parametrize(("header", "bearer"), [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Bearer a b", "a b"),
                                               ("Bearer", ""), ("Token abc", None), ("Basic abc", None)])
def test_the_bearer_secret_as_sent(header, bearer):
    assert Credentials.from_request(factory.get("/", HTTP_AUTHORIZATION=header)).bearer == bearer


def test_no_header_and_an_empty_one_present_nothing():
    for credentials in (Credentials.from_request(factory.get("/")), Credentials.from_request(factory.get("/", HTTP_AUTHORIZATION="")),
                        Credentials.from_scope(scope()), Credentials.from_scope(scope([(b"authorization", b"")]))):
        assert credentials == Credentials()
        assert not credentials.names_api_token


def test_the_frame_token_key_and_embed_token_of_a_websocket_scope():
    credentials = Credentials.from_scope(scope(query=b"frame_token=abc%3Adef&key=k%2B1&embed_token=bke_x&other=1"))
    assert credentials.frame_token == "abc:def" and credentials.key == "k+1" and credentials.embed_token == "bke_x"
    assert credentials.authorization is None and credentials.api_token is None


def test_blank_and_absent_query_parameters_are_none():
    assert Credentials.from_scope(scope(query=b"frame_token=&key=")) == Credentials()
    assert Credentials.from_request(factory.get("/?frame_token=&key=&embed_token=")) == Credentials()


def test_the_query_of_a_request():
    request = factory.get("/", {"frame_token": "abc:def", "key": "k+1", "embed_token": "bke_x"})
    credentials = Credentials.from_request(request)
    assert (credentials.frame_token, credentials.key, credentials.embed_token) == ("abc:def", "k+1", "bke_x")


def test_a_header_and_a_frame_token_together():
    credentials = Credentials.from_scope(scope([(b"authorization", b"Token bks_abc")], b"frame_token=f"))
    assert credentials.api_token == "bks_abc" and credentials.frame_token == "f"


def test_a_request_is_read_once_whether_drf_wraps_it_or_not():
    request = factory.get("/?key=k", HTTP_AUTHORIZATION="Token bks_abc")
    credentials = Credentials.from_request(request)
    assert Credentials.from_request(Request(request)) is credentials
    assert Credentials.from_request(request) is credentials


def test_a_scope_is_read_once():
    connection = scope([(b"authorization", b"Token bks_abc")], b"key=k")
    credentials = Credentials.from_scope(connection)
    assert connection["credentials"] is credentials and Credentials.from_scope(connection) is credentials
