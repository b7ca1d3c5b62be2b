from typing import Any

from bokeh import plotting

_RENAMED = {"plot_width": "width", "plot_height": "height"}


def figure(*args: Any, **kwargs: Any) -> plotting.figure:
    """``bokeh.plotting.figure``, also accepting the pre-3.0 ``plot_width``/``plot_height``."""
    for old, new in _RENAMED.items():
        if old in kwargs:
            if new in kwargs:
                raise TypeError(f"figure() got both {old!r} and {new!r}")
            kwargs[new] = kwargs.pop(old)
    return plotting.figure(*args, **kwargs)
