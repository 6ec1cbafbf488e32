// The department queue: the map of the listed requests, select-all, and the live counts
// (Server-Sent Events from /staff/queue/events; EventSource reconnects by itself).
(function () {
  "use strict";

  // GEO311_MAP_CENTRE ("lon,lat,zoom"): where the map opens before its points are known.
  function centreOf(el) {
    var c = (el.dataset.centre || "").split(",").map(parseFloat);
    return { latlng: [c[1], c[0]], zoom: c[2] };
  }

  var mapEl = document.getElementById("queue-map");
  if (mapEl && window.L) {
    var centre = centreOf(mapEl);
    var map = L.map(mapEl, { zoomControl: true, attributionControl: false }).setView(centre.latlng, centre.zoom - 1);
    fetch(mapEl.dataset.url, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (!data.features) { return; }
        var layer = L.geoJSON(data, {
          pointToLayer: function (feature, latlng) {
            return L.circleMarker(latlng, {
              radius: 6, weight: 1, color: "#1b1b1b",
              fillColor: feature.properties.overdue ? "#8a4b00" : "#0b5cad", fillOpacity: 0.85
            });
          },
          onEachFeature: function (feature, marker) {
            var p = feature.properties;
            var box = document.createElement("div");
            var strong = document.createElement("strong");
            strong.textContent = p.service_request_id;
            box.appendChild(strong);
            box.appendChild(document.createElement("br"));
            box.appendChild(document.createTextNode(p.service_name + " · " + p.status_name));
            if (p.address) {
              box.appendChild(document.createElement("br"));
              box.appendChild(document.createTextNode(p.address));
            }
            marker.bindPopup(box);
          }
        }).addTo(map);
        mapEl.dataset.features = String(data.features.length);
        if (data.features.length) { map.fitBounds(layer.getBounds(), { maxZoom: 16, padding: [40, 40] }); }
      });
  }

  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('input[name="selected"]').forEach(function (box) { box.checked = all.checked; });
    });
  }

  var section = document.getElementById("counts");
  if (!section || !window.EventSource) { return; }
  var state = section.querySelector("[data-live-state]");

  function show(counts) {
    var values = { "totals.open": counts.totals.open, "totals.overdue": counts.totals.overdue,
                   "totals.unassigned": counts.totals.unassigned };
    counts.statuses.forEach(function (row) {
      ["open", "overdue", "unassigned"].forEach(function (k) { values[row.status + "." + k] = row[k]; });
    });
    section.querySelectorAll("[data-count]").forEach(function (el) {
      var value = values[el.dataset.count];
      if (value !== undefined && el.textContent !== String(value)) { el.textContent = String(value); }
    });
  }

  var source = new EventSource(section.dataset.eventsUrl, { withCredentials: true });
  source.addEventListener("counts", function (message) {
    show(JSON.parse(message.data));
    state.textContent = state.dataset.live || "live";
    section.dataset.live = "1";
  });
  source.addEventListener("error", function () {
    state.textContent = state.dataset.reconnecting || "reconnecting…";
  });
})();
