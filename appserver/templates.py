"""An app's own page template (a directory app's ``templates/index.html``, or ``curdoc().template``),
rendered as ``bokeh serve`` renders it: Jinja, ``{% extends base %}`` with Bokeh's own base page,
the document's ``template_variables``, ``embed(roots.name)`` placing each root. No Django here:
this runs in the app process, where the document and its variables live.

Bokeh's resources and its embedding script are left out: the server's sandboxed frame puts its
own in their place (``HEAD_MARK``, ``BODY_MARK``; ``documents.views``), and BokehJS then draws
each root into the placeholder ``embed`` made for it.
"""

from __future__ import annotations

from bokeh.core.templates import FILE, MACROS, get_env
from bokeh.document import Document
from bokeh.embed.util import RenderItem

from bokehsite.protocol import PAGE_BODY_MARK as BODY_MARK, PAGE_HEAD_MARK as HEAD_MARK


def template_page(doc: Document) -> str | None:
    """The app's page for ``doc``, or None when it keeps Bokeh's own (the frame lays it out)."""
    template = doc.template
    if template is FILE:
        return None
    if isinstance(template, str):
        template = get_env().from_string("{% extends base %}\n" + template)
    item = RenderItem(docid="document", roots=list(doc.roots))
    context = {**doc.template_variables, "title": doc.title, "bokeh_css": "", "bokeh_js": HEAD_MARK,
               "plot_script": BODY_MARK, "docs": [item], "doc": item, "roots": item.roots, "base": FILE,
               "macros": MACROS}
    # Its links resolve as under bokeh serve, where the page of app NAME is /NAME: NAME/static/...
    page = template.render(context).replace("<head>", '<head><base href="/apps/">', 1)
    if HEAD_MARK not in page or BODY_MARK not in page:
        # A template that replaced the head's resources or the body's script: put the frame's
        # parts where a page always has room for them.
        page = page.replace("</head>", HEAD_MARK + "</head>", 1) if HEAD_MARK not in page else page
        page = page.replace("</body>", BODY_MARK + "</body>", 1) if BODY_MARK not in page else page
    return page
