/* The report page's enhancements: the form posts without them.
 * A pin on the map (tap, drag, "use my location", an address picked from the search) fills
 * lat/long; then the coverage endpoint names the ward and department, and the nearby endpoint
 * lists similar open reports, each of which can be followed instead (POST .../follow). */
(function () {
  "use strict";
  function json(id) { return JSON.parse(document.getElementById(id).textContent); }
  var urls = json("page-urls"), centre = json("map-centre"), layer = json("map-layer");
  var text = json("page-text");
  var form = document.getElementById("report-form");
  var lat = form.elements.lat, lon = form.elements.long, address = form.elements.address;
  var category = form.elements.service_code;
  var coverageBox = document.getElementById("coverage");
  var nearbyBox = document.getElementById("nearby"), nearbyList = document.getElementById("nearby-list");
  var nearbyError = document.getElementById("nearby-error");
  var status = document.getElementById("locate-status");
  var coverage = null, map = null, marker = null, pinRequest = 0;

  Array.prototype.forEach.call(document.querySelectorAll(".js-only"), function (el) { el.hidden = false; });

  // --- questions: only the chosen category's, the others disabled (not sent) ---
  function showQuestions() {
    Array.prototype.forEach.call(document.querySelectorAll("fieldset.questions"), function (set) {
      var on = set.getAttribute("data-service") === category.value;
      set.hidden = !on;
      set.disabled = !on;
    });
  }
  category.addEventListener("change", function () { showQuestions(); showCoverage(); findNearby(); });
  showQuestions();

  // --- anonymous: no contact fields ---
  var anonymous = form.elements.anonymous, contact = document.getElementById("contact-details");
  function showContact() { contact.hidden = anonymous.checked; }
  anonymous.addEventListener("change", showContact);
  showContact();

  // --- the map ---
  if (window.maplibregl) {
    map = new maplibregl.Map({
      container: "map",
      style: {version: 8, sources: {}, layers: [
        {id: "background", type: "background", paint: {"background-color": "#eef1f4"}}]},
      center: [centre[0], centre[1]], zoom: centre[2] || 12,
      attributionControl: false
    });
    map.addControl(new maplibregl.NavigationControl({showCompass: false}));
    map.on("load", function () {
      if (!layer) return;
      fetch(urls.boundaries.replace("SLUG", layer) + "?simplify=20").then(function (r) {
        return r.ok ? r.json() : null;
      }).then(function (data) {
        if (!data) return;
        map.addSource("boundaries", {type: "geojson", data: data});
        map.addLayer({id: "boundaries-line", type: "line", source: "boundaries",
          paint: {"line-color": "#5a6b7d", "line-width": 1}});
      });
    });
    map.on("click", function (e) { setPin(e.lngLat.lng, e.lngLat.lat, {}); });
  }

  function setPin(lng, la, options) {
    if (map) {
      if (!marker) {
        marker = new maplibregl.Marker({draggable: true, color: "#0b5cad"}).setLngLat([lng, la]).addTo(map);
        marker.on("dragend", function () {
          var p = marker.getLngLat();
          setPin(p.lng, p.lat, {});
        });
      } else {
        marker.setLngLat([lng, la]);
      }
      if (options.fly) map.flyTo({center: [lng, la], zoom: Math.max(map.getZoom(), 16)});
    }
    lat.value = la.toFixed(6);
    lon.value = lng.toFixed(6);
    if (options.address === undefined) address.value = "";
    else address.value = options.address;
    lookUp();
  }

  document.getElementById("pin-centre").addEventListener("click", function () {
    var c = map.getCenter();
    setPin(c.lng, c.lat, {});
  });
  document.getElementById("locate").addEventListener("click", function () {
    if (!navigator.geolocation) { status.textContent = text.noLocation; return; }
    status.textContent = text.locating;
    navigator.geolocation.getCurrentPosition(function (position) {
      status.textContent = "";
      setPin(position.coords.longitude, position.coords.latitude, {fly: true});
    }, function () { status.textContent = text.noLocation; }, {enableHighAccuracy: true, timeout: 15000});
  });
  // Typed coordinates (no map needed).
  [lat, lon].forEach(function (input) {
    input.addEventListener("change", function () {
      var la = parseFloat(lat.value), lng = parseFloat(lon.value);
      if (isFinite(la) && isFinite(lng)) setPin(lng, la, {fly: true, address: address.value});
    });
  });

  // --- address search ---
  var results = document.getElementById("address-results"), searchTimer = null, searchSeq = 0;
  address.setAttribute("aria-controls", "address-results");
  address.addEventListener("input", function () {
    clearTimeout(searchTimer);
    var q = address.value.trim();
    if (q.length < 3) { results.hidden = true; return; }
    searchTimer = setTimeout(function () {
      var seq = ++searchSeq;
      fetch(urls.addresses + "?q=" + encodeURIComponent(q)).then(function (r) { return r.json(); })
        .then(function (found) {
          if (seq !== searchSeq) return;
          results.textContent = "";
          found.forEach(function (point) {
            var item = document.createElement("li"), button = document.createElement("button");
            item.setAttribute("role", "option");
            button.type = "button";
            button.textContent = point.address + (point.zipcode ? " " + point.zipcode : "");
            button.addEventListener("click", function () {
              results.hidden = true;
              setPin(point.lon, point.lat, {fly: true, address: point.address});
              category.focus();
            });
            item.appendChild(button);
            results.appendChild(item);
          });
          results.hidden = found.length === 0;
        });
    }, 250);
  });
  address.addEventListener("keydown", function (e) {
    if (e.key === "ArrowDown" && !results.hidden) {
      e.preventDefault();
      results.querySelector("button").focus();
    }
  });
  results.addEventListener("keydown", function (e) {
    var item = e.target.closest("li");
    if (!item) return;
    if (e.key === "ArrowDown" && item.nextElementSibling) { e.preventDefault(); item.nextElementSibling.firstChild.focus(); }
    if (e.key === "ArrowUp") { e.preventDefault(); (item.previousElementSibling ? item.previousElementSibling.firstChild : address).focus(); }
    if (e.key === "Escape") { results.hidden = true; address.focus(); }
  });

  // --- coverage and nearby reports ---
  function lookUp() {
    var seq = ++pinRequest;
    coverage = null;
    fetch(urls.coverage + "?lat=" + lat.value + "&long=" + lon.value).then(function (r) { return r.json(); })
      .then(function (data) {
        if (seq !== pinRequest) return;
        coverage = data;
        showCoverage();
      });
    findNearby();
  }

  function showCoverage() {
    if (!coverage) return;
    coverageBox.hidden = false;
    coverageBox.textContent = "";
    if (!coverage.served) { coverageBox.textContent = text.outside; return; }
    var areas = document.createElement("p");
    areas.id = "coverage-areas";
    areas.textContent = (coverage.areas || []).map(function (a) {
      return a.layer_name + ": " + (a.name && a.name !== a.code ? a.code + " (" + a.name + ")" : a.code);
    }).join(" · ");
    coverageBox.appendChild(areas);
    var service = (coverage.services || []).filter(function (s) { return s.service_code === category.value; })[0];
    if (service) {
      var who = document.createElement("p");
      who.id = "coverage-department";
      who.textContent = service.served
        ? text.servedBy + ": " + service.agency_responsible + (service.team ? " (" + service.team + ")" : "")
        : service.reason;
      coverageBox.appendChild(who);
    }
  }

  var nearbySeq = 0;
  function findNearby() {
    if (!lat.value || !lon.value || !category.value) { nearbyBox.hidden = true; return; }
    var seq = ++nearbySeq;
    var query = "?lat=" + lat.value + "&lon=" + lon.value + "&service_code=" + encodeURIComponent(category.value);
    fetch(urls.nearby + query).then(function (r) { return r.ok ? r.json() : {candidates: []}; })
      .then(function (data) {
        if (seq !== nearbySeq) return;
        nearbyList.textContent = "";
        nearbyError.hidden = true;
        var open = data.candidates.filter(function (c) { return c.status === "open"; });
        nearbyBox.hidden = open.length === 0;
        open.forEach(function (c) { nearbyList.appendChild(candidateItem(c)); });
      });
  }

  function candidateItem(c) {
    var item = document.createElement("li"), title = document.createElement("strong");
    item.className = "candidate";
    item.setAttribute("data-id", c.public_id);
    title.textContent = c.service_name + " #" + c.public_id;
    item.appendChild(title);
    var details = document.createElement("div");
    details.className = "muted";
    details.textContent = [c.address, Math.round(c.distance_m) + " " + text.away,
      new Date(c.requested_datetime).toLocaleDateString()].filter(Boolean).join(" · ");
    item.appendChild(details);
    if (c.reasons && c.reasons.length) {
      var why = document.createElement("div");
      why.className = "muted";
      why.textContent = c.reasons.join("; ");
      item.appendChild(why);
    }
    var actions = document.createElement("div"), see = document.createElement("a"), follow = document.createElement("button");
    actions.className = "actions";
    see.href = urls.tracking.replace("ID", encodeURIComponent(c.public_id));
    see.textContent = text.see;
    see.className = "button secondary";
    follow.type = "button";
    follow.textContent = text.follow;
    follow.addEventListener("click", function () { followInstead(c.public_id); });
    actions.appendChild(follow);
    actions.appendChild(see);
    item.appendChild(actions);
    return item;
  }

  function followInstead(publicId) {
    var email = form.elements.email.value.trim(), phone = form.elements.phone.value.trim();
    if (anonymous.checked || (!email && !phone)) {
      anonymous.checked = false;
      showContact();
      nearbyError.textContent = text.needContact;
      nearbyError.hidden = false;
      form.elements.email.focus();
      return;
    }
    fetch(urls.follow.replace("ID", encodeURIComponent(publicId)), {
      method: "POST",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: JSON.stringify({email: email, phone: phone})
    }).then(function (r) {
      return r.json().then(function (body) { return {ok: r.ok, body: body}; });
    }).then(function (answer) {
      if (answer.ok) {
        window.location.href = urls.tracking.replace("ID", encodeURIComponent(answer.body.service_request_id)) + "?following=1";
        return;
      }
      var problems = Object.keys(answer.body).map(function (k) { return k + ": " + [].concat(answer.body[k]).join(" "); });
      nearbyError.textContent = text.followFailed + " " + problems.join("; ");
      nearbyError.hidden = false;
    });
  }

  // A form re-shown with errors keeps its pin.
  if (lat.value && lon.value && isFinite(parseFloat(lat.value)) && isFinite(parseFloat(lon.value))) {
    setPin(parseFloat(lon.value), parseFloat(lat.value), {fly: true, address: address.value});
  }
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
