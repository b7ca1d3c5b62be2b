from appserver import catalog


def served_apps(request):
    """The names of the apps this server serves, for the navigation and the home page."""
    return {"served_apps": list(catalog.apps())}
