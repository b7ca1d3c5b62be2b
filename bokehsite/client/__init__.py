"""bokehsite's Python client: push Bokeh documents to a bokehsite server and work with them.

Needs only bokeh, requests, websockets and tqdm; importing it never touches Django.
"""

from bokehsite.client.backed import server_source
from bokehsite.client.embed import autoload_server
from bokehsite.client.exceptions import BokehsiteError, BrowserLoginFailed, ServerError, ServerUnreachable, TooManyConnections
from bokehsite.client.io import curdoc, cursession, output_server, push, show
from bokehsite.client.plotting import figure
from bokehsite.client.session import Session
from bokehsite.client.datasets import Dataset

__all__ = [
    "BokehsiteError", "BrowserLoginFailed", "ServerError", "ServerUnreachable", "Session", "TooManyConnections",
    "curdoc", "cursession", "figure", "output_server", "push", "show",
    "Dataset",
    "autoload_server", "server_source",
]
