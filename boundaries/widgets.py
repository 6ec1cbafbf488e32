from django.contrib.gis.forms.widgets import OSMWidget


class LocalOSMWidget(OSMWidget):
    """Django's OpenStreetMap widget with OpenLayers served from our own static files.

    Django loads OpenLayers from a CDN; staff networks that block it (or have no internet) would
    get no map. Only the background tiles still come from OpenStreetMap; the polygon draws
    without them.
    """

    class Media:
        extend = False
        css = {"all": ("vendor/ol-7.2.2/ol.css", "gis/css/ol3.css")}
        js = ("vendor/ol-7.2.2/ol.js", "gis/js/OLMapWidget.js")
