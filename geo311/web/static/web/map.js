/* The public map: requests and boundaries from geo311's vector tiles (/tiles/{layer}/{z}/{x}/{y}.mvt).
 * At z <= 12 the requests layer holds cells with a `count`; above, one point per request with
 * public_id, service_code, status, open311_status, requested_at (sensitive categories at their
 * public location). Filters go to the tile URL; the reports in view are also listed as links
 * under the map, for keyboards and screen readers. */
(function () {
  "use strict";
  function json(id) { return JSON.parse(document.getElementById(id).textContent); }
  var urls = json("page-urls"), centre = json("map-centre");
  var form = document.getElementById("map-filters");
  var status = document.getElementById("map-status");
  var list = document.getElementById("in-view");
  var names = {};
  Array.prototype.forEach.call(form.elements.service_code.options, function (o) { if (o.value) names[o.value] = o.textContent; });
  var origin = window.location.origin;

  function tileUrl(slug, query) {
    return origin + urls.tiles.replace("SLUG", slug) + (query ? "?" + query : "");
  }
  function requestQuery() {
    var q = new URLSearchParams();
    if (form.elements.service_code.value) q.set("service_code", form.elements.service_code.value);
    if (form.elements.status.value) q.set("status", form.elements.status.value);
    if (form.elements.since.value) q.set("from", form.elements.since.value);
    return q.toString();
  }

  var map = new maplibregl.Map({
    container: "map",
    style: {
      version: 8,
      sources: {
        requests: {type: "vector", tiles: [tileUrl("requests", requestQuery())], minzoom: 0, maxzoom: 16}
      },
      layers: [
        {id: "background", type: "background", paint: {"background-color": "#eef1f4"}},
        {id: "cells", type: "circle", source: "requests", "source-layer": "requests",
          filter: ["has", "count"],
          paint: {
            "circle-color": "#0b5cad", "circle-opacity": 0.55,
            "circle-radius": ["interpolate", ["linear"], ["sqrt", ["get", "count"]], 1, 4, 30, 22]
          }},
        {id: "points", type: "circle", source: "requests", "source-layer": "requests",
          filter: ["!", ["has", "count"]],
          paint: {
            "circle-radius": 6, "circle-stroke-width": 1.5, "circle-stroke-color": "#ffffff",
            "circle-color": ["match", ["get", "open311_status"], "closed", "#595959", "#c0392b"]
          }}
      ]
    },
    center: [centre[0], centre[1]], zoom: centre[2] || 12,
    attributionControl: false
  });
  map.addControl(new maplibregl.NavigationControl({showCompass: false}));

  var boundary = null;
  function showBoundaries() {
    var slug = form.elements.layer.value;
    if (boundary) {
      map.removeLayer("boundary-line");
      map.removeSource("boundary");
      boundary = null;
    }
    if (!slug) return;
    map.addSource("boundary", {type: "vector", tiles: [tileUrl(slug, "")], maxzoom: 16});
    map.addLayer({id: "boundary-line", type: "line", source: "boundary", "source-layer": slug,
      paint: {"line-color": "#3d4d5c", "line-width": 1.2}}, "cells");
    boundary = slug;
  }

  map.on("load", function () {
    showBoundaries();
    form.addEventListener("change", function (e) {
      if (e.target.name === "layer") { showBoundaries(); return; }
      map.getSource("requests").setTiles([tileUrl("requests", requestQuery())]);
    });
  });
  form.addEventListener("submit", function (e) { e.preventDefault(); });

  function details(p) {
    var box = document.createElement("div"), link = document.createElement("a");
    box.className = "popup";
    link.href = urls.tracking.replace("ID", encodeURIComponent(p.public_id));
    link.textContent = (names[p.service_code] || p.service_code) + " #" + p.public_id;
    box.appendChild(link);
    var line = document.createElement("div");
    line.textContent = p.status + " · " + new Date(p.requested_at).toLocaleDateString();
    box.appendChild(line);
    return box;
  }
  map.on("click", "points", function (e) {
    var p = e.features[0].properties;
    new maplibregl.Popup({maxWidth: "16rem"}).setLngLat(e.lngLat).setDOMContent(details(p)).addTo(map);
  });
  map.on("click", "cells", function (e) {
    map.easeTo({center: e.lngLat, zoom: Math.min(map.getZoom() + 2, 13)});
  });
  ["points", "cells"].forEach(function (id) {
    map.on("mouseenter", id, function () { map.getCanvas().style.cursor = "pointer"; });
    map.on("mouseleave", id, function () { map.getCanvas().style.cursor = ""; });
  });

  // The reports in view as a list (keyboard and screen readers), after each move.
  map.on("idle", function () {
    var seen = {}, points = [], cells = 0;
    map.queryRenderedFeatures({layers: ["points", "cells"]}).forEach(function (f) {
      if (f.properties.count !== undefined) { cells += f.properties.count; return; }
      if (seen[f.properties.public_id]) return;
      seen[f.properties.public_id] = true;
      points.push(f.properties);
    });
    list.textContent = "";
    points.slice(0, 50).forEach(function (p) {
      var item = document.createElement("li");
      item.appendChild(details(p));
      list.appendChild(item);
    });
    status.textContent = points.length
      ? points.length + " " + list.getAttribute("data-points")
      : (cells ? cells + " " + list.getAttribute("data-cells") : list.getAttribute("data-none"));
  });
})();
