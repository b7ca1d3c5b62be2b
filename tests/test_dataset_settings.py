"""The datasets' settings come from the environment; bad values fail loudly."""

import os
import subprocess
import sys

from tests.servers import ROOT

PRINT = """
import django
from django.conf import settings
django.setup()
print(settings.BOKEHSITE_DATASET_DIR, settings.BOKEHSITE_DATASET_QUOTA_BYTES, settings.BOKEHSITE_DATASET_MAX_BYTES,
      settings.BOKEHSITE_DATASET_CHUNK_BYTES, settings.BOKEHSITE_DATASET_UPLOAD_EXPIRY)
"""
NAMES = ("BOKEHSITE_DATASET_DIR", "BOKEHSITE_DATASET_QUOTA_BYTES", "BOKEHSITE_DATASET_MAX_BYTES",
         "BOKEHSITE_DATASET_CHUNK_BYTES", "BOKEHSITE_DATASET_UPLOAD_EXPIRY")


def load(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in NAMES}
    full = {**base, "DJANGO_SETTINGS_MODULE": "bokehsite.settings", "BOKEHSITE_DATA_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=60)


def test_datasets_live_under_the_data_directory_by_default(tmp_path):
    result = load(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path / "datasets"), str(50 * 1024 ** 3), str(16 * 1024 ** 3),
                                     str(64 * 1024 ** 2), str(24 * 3600)]


def test_the_datasets_settings_are_read_and_checked(tmp_path):
    result = load(tmp_path, BOKEHSITE_DATASET_DIR="/mnt/shared/datasets", BOKEHSITE_DATASET_QUOTA_BYTES="1000",
                  BOKEHSITE_DATASET_MAX_BYTES="500", BOKEHSITE_DATASET_CHUNK_BYTES="4096",
                  BOKEHSITE_DATASET_UPLOAD_EXPIRY="60")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["/mnt/shared/datasets", "1000", "500", "4096", "60"]
    for name, value in (("BOKEHSITE_DATASET_CHUNK_BYTES", "10"), ("BOKEHSITE_DATASET_QUOTA_BYTES", "-1"),
                        ("BOKEHSITE_DATASET_MAX_BYTES", "lots")):
        refused = load(tmp_path, **{name: value})
        assert refused.returncode != 0 and "ImproperlyConfigured" in refused.stderr and name in refused.stderr
