from django.db import migrations

# Float arrays barely compress, yet PostgreSQL tries (pglz) on every large bytea value: about
# 0.75 s for a million points. EXTERNAL keeps large values out of line, uncompressed.
TABLES = ("documents_snapshot", "documents_event")


def store_uncompressed(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"ALTER TABLE {table} ALTER COLUMN buffers SET STORAGE EXTERNAL")


def store_default(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"ALTER TABLE {table} ALTER COLUMN buffers SET STORAGE EXTENDED")


class Migration(migrations.Migration):
    dependencies = [("documents", "0002_snapshots_and_event_log")]
    operations = [migrations.RunPython(store_uncompressed, store_default)]
