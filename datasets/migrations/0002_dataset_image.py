from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("datasets", "0001_datasets_and_upload_chunks"),
    ]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="kind",
            field=models.CharField(choices=[("columns", "Columns"), ("image", "Image")], default="columns",
                                   help_text="Columns, or an image: one 2-D column of ``length`` rows of ``width`` pixels.",
                                   max_length=16),
        ),
        migrations.AddField(
            model_name="dataset",
            name="width",
            field=models.BigIntegerField(default=0, help_text="An image's pixels a row (0 for columns)."),
        ),
        migrations.AddField(
            model_name="dataset",
            name="extent",
            field=models.JSONField(blank=True, help_text="An image's [x0, x1, y0, y1]: the edges of its pixels.",
                                   null=True),
        ),
    ]
