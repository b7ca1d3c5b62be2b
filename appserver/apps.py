from django.apps import AppConfig


class AppserverConfig(AppConfig):
    name = "appserver"
    label = "appserver"
    verbose_name = "Bokeh apps"
