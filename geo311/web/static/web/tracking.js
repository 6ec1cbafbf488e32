/* The tracking page: the (public) point on a small map, and new events as they happen, from
 * the request's Server-Sent Events stream (resuming after the last event the page shows). */
(function () {
  "use strict";
  function json(id) { return JSON.parse(document.getElementById(id).textContent); }
  var point = json("report-point");
  if (window.maplibregl && point) {
    var box = document.getElementById("map");
    box.hidden = false;
    var map = new maplibregl.Map({
      container: box,
      style: {version: 8, sources: {}, layers: [
        {id: "background", type: "background", paint: {"background-color": "#eef1f4"}}]},
      center: point, zoom: 15, interactive: false, attributionControl: false
    });
    new maplibregl.Marker({color: "#0b5cad"}).setLngLat(point).addTo(map);
  }
  if (!window.EventSource) return;
  var url = json("events-url"), after = json("last-event-id");
  var source = new EventSource(url + "?after=" + after, {withCredentials: url.indexOf("http") === 0});
  source.onopen = function () { document.getElementById("live").hidden = false; };
  source.onmessage = function (message) {
    var e = JSON.parse(message.data);
    document.getElementById("status").textContent = e.status_name;
    var item = document.createElement("li");
    item.className = "live-event";
    item.textContent = new Date(e.datetime).toLocaleString() + " " + e.status_name + (e.note ? ": " + e.note : "");
    if (e.photo_url) {
      var link = document.createElement("a");
      link.href = e.photo_url;
      link.textContent = " photo";
      item.appendChild(link);
    }
    document.getElementById("history").appendChild(item);
  };
})();
