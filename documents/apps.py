from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "documents"

    def ready(self) -> None:
        from bokehsite import bokeh_fixes, bokeh_speed

        bokeh_speed.install()  # every change is checked by applying it through Bokeh
        bokeh_fixes.install()  # and applied as the browser applies it
        # Bokeh's ColumnDataSource.stream looks pandas up in sys.modules without importing it, so
        # pandas imported first in another thread (by Datashader, for a view; by an app) can be
        # seen half made by a stream being checked, which then fails: imported whole here, first.
        import pandas  # noqa: F401
        from documents import signals  # noqa: F401  (connects the access receivers)
        from documents import quota  # noqa: F401  (a document deleted releases its bytes)
        from documents import thumbnails  # noqa: F401  (draws a thumbnail again when its content is stored)
