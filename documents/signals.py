"""What the documents domain tells the rest of the site, once it is committed.

``streaming.broadcast`` listens, so that this app never imports the websocket app.
"""

from django.dispatch import Signal

# changes: list[documents.changes.Change], consecutive versions of one document, in order.
changes_committed = Signal()
