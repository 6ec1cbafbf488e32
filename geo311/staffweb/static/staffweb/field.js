// The field view: the device location sorts the list (the server measures distances in
// PostGIS) and fills the forms' lat/lon so the page comes back sorted; the map shows the work.
(function () {
  "use strict";

  var list = document.getElementById("field-list");
  var where = document.getElementById("where");
  var mapEl = document.getElementById("field-map");
  var map = null, markers = null, you = null;

  // GEO311_MAP_CENTRE ("lon,lat,zoom"): where the map opens before its points are known.
  function centreOf(el) {
    var c = (el.dataset.centre || "").split(",").map(parseFloat);
    return { latlng: [c[1], c[0]], zoom: c[2] };
  }

  function jobs() { return Array.prototype.slice.call(list.querySelectorAll("li.job")); }

  if (mapEl && window.L) {
    var centre = centreOf(mapEl);
    map = L.map(mapEl, { attributionControl: false }).setView(centre.latlng, centre.zoom);
    markers = L.featureGroup().addTo(map);
    jobs().forEach(function (li) {
      var marker = L.circleMarker([parseFloat(li.dataset.lat), parseFloat(li.dataset.lon)], {
        radius: 8, weight: 1, color: "#1b1b1b", fillColor: "#0b5cad", fillOpacity: 0.9
      }).addTo(markers);
      marker.bindTooltip(li.querySelector(".category").textContent);
      marker.on("click", function () {
        li.scrollIntoView({ behavior: "smooth", block: "center" });
        li.classList.add("highlight");
        setTimeout(function () { li.classList.remove("highlight"); }, 1500);
      });
    });
    if (jobs().length) { map.fitBounds(markers.getBounds(), { maxZoom: 16, padding: [40, 40] }); }
  }

  function located(lat, lon) {
    list.querySelectorAll('input[name="lat"]').forEach(function (el) { el.value = lat.toFixed(6); });
    list.querySelectorAll('input[name="lon"]').forEach(function (el) { el.value = lon.toFixed(6); });
    if (map) {
      if (you) { you.setLatLng([lat, lon]); } else {
        you = L.circleMarker([lat, lon], { radius: 7, color: "#1e6b34", fillColor: "#1e6b34", fillOpacity: 1 }).addTo(map);
        you.bindTooltip(where.dataset.you || "You");
      }
    }
    var url = where.dataset.workUrl + "?lat=" + encodeURIComponent(lat) + "&lon=" + encodeURIComponent(lon);
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        data.requests.forEach(function (row) {
          var li = document.getElementById("job-" + row.service_request_id);
          if (!li) { return; }
          li.querySelector(".distance").textContent = Math.round(row.distance_m) + " m";
          list.appendChild(li);  // in the server's order: nearest first
        });
        where.textContent = where.dataset.nearest || "Nearest first.";
        list.dataset.sorted = "1";
      });
  }

  if (navigator.geolocation) {
    navigator.geolocation.getCurrentPosition(
      function (pos) { located(pos.coords.latitude, pos.coords.longitude); },
      function () { where.textContent = where.dataset.nolocation || "Location unavailable: oldest first."; },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 }
    );
  }
})();
