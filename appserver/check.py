"""``python -m appserver.check PATH...``: run each app once (``appserver.loading.check``) in this
throwaway process, so that no app code runs in the server's. ``bokeh-server`` runs it before it
starts.

Standard output carries one JSON line, ``{"apps": [names], "errors": [messages]}``; whatever the
apps print goes to standard error. The exit status is 0 when every app ran, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from appserver.loading import AppLoadError, app_specs, check


def main(paths: Sequence[str]) -> int:
    result = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    # The apps' own output (print, or a subprocess of theirs) must not mix with the result.
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    names: list[str] = []
    errors: list[str] = []
    try:
        specs = app_specs(paths)
    except AppLoadError as e:
        specs, errors = [], [str(e)]
    for spec in specs:
        try:
            check(spec)
        except AppLoadError as e:
            errors.append(str(e))
        else:
            names.append(spec.name)
    result.write(json.dumps({"apps": names, "errors": errors}) + "\n")
    result.flush()
    return 1 if errors else 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    # Threads an app's hooks started must not keep a finished check alive.
    os._exit(code)
