import uuid

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("documents", "0007_version_rows_share_a_base"),
    ]

    operations = [
        migrations.CreateModel(
            name="EmbedToken",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("name", models.CharField(blank=True, max_length=100)),
                ("prefix", models.CharField(editable=False, max_length=16, unique=True)),
                ("digest", models.CharField(editable=False, help_text="SHA-256 of the secret, hex.", max_length=64)),
                ("origins", models.JSONField(default=list, help_text="The origins whose pages may show it, e.g. https://example.org.")),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("expires", models.DateTimeField()),
                ("revoked", models.DateTimeField(blank=True, help_text="When it was revoked; empty while it is valid.", null=True)),
                ("document", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="embed_tokens", to="documents.document")),
            ],
            options={"ordering": ["-created"]},
        ),
    ]
