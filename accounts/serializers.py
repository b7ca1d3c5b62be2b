from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts.models import ApiToken


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)
    token_name = serializers.CharField(max_length=100, required=False, help_text="Name of the token to create.")


class RegisterSerializer(CredentialsSerializer):
    def validate_username(self, username: str) -> str:
        field = get_user_model()._meta.get_field("username")
        try:
            field.run_validators(username)
        except DjangoValidationError as e:
            raise serializers.ValidationError(e.messages) from None
        return username

    def validate(self, data):
        User = get_user_model()
        try:
            password_validation.validate_password(data["password"], User(username=data["username"]))
        except DjangoValidationError as e:
            raise serializers.ValidationError({"password": e.messages}) from None
        return data


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created", "last_used", "expires", "revoked"]
        read_only_fields = fields


class NewTokenSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret, shown only this once.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class TokenAnswerSerializer(serializers.Serializer):
    """What registering and logging in answer: a new API token."""

    token = serializers.CharField(help_text="The new token's secret, shown only this once.")
    username = serializers.CharField()
    token_id = serializers.IntegerField()
    prefix = serializers.CharField(help_text="The token's visible prefix, as token lists show it.")


class CreateTokenSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires = serializers.DateTimeField(required=False, allow_null=True, help_text="When it stops working.")
    expires_in_days = serializers.IntegerField(required=False, min_value=1, max_value=3650)


class AccountSerializer(serializers.Serializer):
    """Who the caller is, and what their documents take of their storage quota."""

    username = serializers.CharField()
    storage_used = serializers.IntegerField(help_text="Bytes the caller's documents take: snapshots, history, thumbnails.")
    storage_quota = serializers.IntegerField(allow_null=True, help_text="Bytes they may take; null: no quota.")
