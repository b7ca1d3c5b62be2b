import json

from django.db import migrations, models


def measure(apps, schema_editor):
    """Existing snapshots are measured as new ones are (``Snapshot.set_content``)."""
    Snapshot = apps.get_model("documents", "Snapshot")
    for snapshot in Snapshot.objects.only("pk", "doc", "buffers").iterator(chunk_size=20):
        size = len(json.dumps(snapshot.doc, separators=(",", ":"))) + len(snapshot.buffers)
        Snapshot.objects.filter(pk=snapshot.pk).update(stored_size=size)


class Migration(migrations.Migration):

    dependencies = [
        ("documents", "0010_thumbnails"),
    ]

    operations = [
        migrations.AddField(
            model_name="snapshot",
            name="stored_size",
            field=models.PositiveBigIntegerField(default=0, help_text="Bytes of JSON and buffers, as the storage quota counts them."),
        ),
        migrations.RunPython(measure, migrations.RunPython.noop, elidable=True),
    ]
