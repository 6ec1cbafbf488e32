// The planner page: asks the analysis API for the filter's hot spots, clusters, density and
// performance, polls runs that are still being computed, and draws them with Leaflet.
(function () {
  "use strict";

  const API = "/api/v1/analysis/";
  const BIN_COLOURS = {
    "-3": "#4575b5", "-2": "#849eba", "-1": "#c0ccbe", "0": "#f2f2ee",
    "1": "#fab984", "2": "#ed7551", "3": "#d62f27",
  };
  const BIN_LABELS = {
    "3": "hot 99%", "2": "hot 95%", "1": "hot 90%", "-1": "cold 90%", "-2": "cold 95%",
    "-3": "cold 99%",
  };
  const form = document.getElementById("filters");
  const statusLine = document.getElementById("status");
  const downloads = document.getElementById("downloads");

  const map = L.map("map", { preferCanvas: true }).setView([41.84, -87.68], 10);
  const osm = L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
    maxZoom: 19,
    attribution: "© OpenStreetMap contributors",
  });
  const control = L.control.layers(null, { "OpenStreetMap (needs the network)": osm }, {
    collapsed: false,
  }).addTo(map);
  const layers = {};

  function replaceLayer(name, layer, show) {
    if (layers[name]) {
      map.removeLayer(layers[name]);
      control.removeLayer(layers[name]);
    }
    layers[name] = layer;
    control.addOverlay(layer, name);
    if (show) layer.addTo(map);
  }

  function query(extra) {
    const params = new URLSearchParams();
    const data = new FormData(form);
    for (const name of ["category", "department"]) {
      const values = data.getAll(name).filter(Boolean);
      if (values.length) params.set(name, values.join(","));
    }
    for (const name of ["status", "from", "to"]) {
      if (data.get(name)) params.set(name, data.get(name));
    }
    for (const [key, value] of Object.entries(extra || {})) {
      if (value !== "" && value !== null && value !== undefined) params.set(key, value);
    }
    return params.toString();
  }

  function say(text) {
    statusLine.textContent = text;
  }

  async function getJson(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    const body = await response.json();
    if (!response.ok) throw new Error(JSON.stringify(body));
    return { status: response.status, body };
  }

  // Ask for a run; poll it while it is queued or running; resolve with the done run.
  async function run(kind, params) {
    let { body } = await getJson(API + kind + "?" + params);
    while (body.status === "queued" || body.status === "running") {
      say(`${kind}: ${body.status} ${body.progress}% ${body.message || ""}`);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      ({ body } = await getJson(API + "runs/" + body.id + "/"));
    }
    if (body.status === "failed") throw new Error(`${kind}: ${body.message}`);
    return body;
  }

  function link(text, href) {
    const item = document.createElement("li");
    const anchor = document.createElement("a");
    anchor.href = href;
    anchor.textContent = text;
    item.appendChild(anchor);
    return item;
  }

  async function drawHotspots(params) {
    const hot = await run("hotspots", params);
    const cells = await (await fetch(hot.links.cells_geojson, { credentials: "same-origin" })).json();
    cells.features = cells.features.filter((f) => f.properties.gi_bin !== 0);
    const layer = L.geoJSON(cells, {
      style: (f) => ({
        color: BIN_COLOURS[f.properties.gi_bin], weight: 0.5,
        fillColor: BIN_COLOURS[f.properties.gi_bin], fillOpacity: 0.7,
      }),
      onEachFeature: (f, l) => l.bindTooltip(
        `${f.properties.class}: ${f.properties.count} requests, z ${f.properties.z}`),
    });
    replaceLayer("Hot and cold spots (Gi*, FDR)", layer, true);
    if (cells.features.length) map.fitBounds(layer.getBounds());
    document.getElementById("legend").innerHTML = Object.entries(BIN_LABELS)
      .map(([bin, label]) => `<span style="background:${BIN_COLOURS[bin]}"></span>${label}`)
      .join("");
    return hot;
  }

  async function drawClusters(params) {
    const clusters = await run("clusters", params);
    const data = await (await fetch(clusters.links.clusters_geojson, { credentials: "same-origin" })).json();
    data.features = data.features.slice(0, 500);
    replaceLayer("Clusters (DBSCAN)", L.geoJSON(data, {
      style: { color: "#54278f", weight: 1.5, fillOpacity: 0.15 },
      onEachFeature: (f, l) => l.bindTooltip(
        `cluster ${f.properties.label}: ${f.properties.size} requests`),
    }), true);
    return clusters;
  }

  async function drawDensity(params) {
    const density = await run("density", params);
    const b = density.result.bounds;
    if (b) {
      replaceLayer("Kernel density", L.imageOverlay(density.links.png, b), false);
    }
    return density;
  }

  async function drawEquity(params) {
    if (!form.elements.layer.value) return;
    const data = await (await fetch(API + "equity.geojson?" + params, { credentials: "same-origin" })).json();
    replaceLayer("Median days to close against the city", L.geoJSON(data, {
      style: (f) => {
        const r = f.properties.ratio_to_city;
        const colour = r === null || r === undefined ? "#fff" : r < 0.8 ? "#1a9850"
          : r < 0.95 ? "#d9ef8b" : r < 1.05 ? "#ffffbf" : r < 1.5 ? "#fc8d59" : "#d73027";
        return { color: "#555", weight: 0.7, fillColor: colour, fillOpacity: 0.6 };
      },
      onEachFeature: (f, l) => l.bindTooltip(
        `${f.properties.area} ${f.properties.name || ""}: median ${f.properties.close_median_d} days ` +
        `(${f.properties.ratio_to_city} × city)`),
    }), false);
  }

  async function drawPerformance(params) {
    const { body } = await getJson(API + "performance/charts?" + params);
    const city = body.city;
    document.getElementById("summary").innerHTML =
      `<table><tr><th>requests</th><th>closed</th><th>median days to close</th>` +
      `<th>p90 days</th><th>median hours to acknowledge</th><th>SLA met %</th></tr>` +
      `<tr><td>${city.requests}</td><td>${city.closed}</td><td>${city.close_median_d ?? ""}</td>` +
      `<td>${city.close_p90_d ?? ""}</td><td>${city.ack_median_h ?? ""}</td>` +
      `<td>${city.sla_compliance_pct ?? ""}</td></tr></table>`;
    const charts = document.getElementById("charts");
    charts.innerHTML = "";
    for (const [name, uri] of Object.entries(body.charts)) {
      if (!uri) continue;
      const img = document.createElement("img");
      img.src = uri;
      img.alt = name;
      charts.appendChild(img);
    }
  }

  async function outlines() {
    const slug = form.elements.layer.value;
    if (!slug) return;
    const response = await fetch(`/api/v1/boundaries/layers/${slug}/boundaries.geojson?simplify=20`);
    if (!response.ok) return;
    replaceLayer(`${slug} outlines`, L.geoJSON(await response.json(), {
      style: { color: "#444", weight: 0.8, fillOpacity: 0 },
    }), true);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const filter = query();
    const layer = form.elements.layer.value;
    const hotParams = query({ cells: form.elements.cells.value, size: form.elements.size.value });
    downloads.innerHTML = "";
    try {
      say("working…");
      await outlines();
      const [hot, clusters] = await Promise.all([drawHotspots(hotParams), drawClusters(filter)]);
      await drawDensity(filter);
      await drawEquity(query({ layer }));
      await drawPerformance(query({ layer }));
      downloads.append(
        link("Report (HTML, opens offline)", API + "report.html?" + query({ layer })),
        link("Hot spot cells (GeoJSON)", hot.links.cells_geojson),
        link("Hot spot cells (CSV)", hot.links.cells_csv),
        link("Hot spot cells (GeoPackage)", hot.links.cells_gpkg),
        link("Clusters (GeoPackage)", clusters.links.clusters_gpkg),
        link("Performance by department × category × area × month (CSV)",
          API + "performance.csv?" + query({ layer, table: "detail" })),
      );
      say(`done: ${hot.result.hot} hot and ${hot.result.cold} cold cells of ${hot.result.cells}; ` +
        `${clusters.result.clusters} clusters`);
    } catch (error) {
      say("failed: " + error.message);
    }
  });
})();
