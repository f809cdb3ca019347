// Swaps in the page's live part every 10 s (the server renders it, escaped); open details stay open.
(function () {
  "use strict";
  var PERIOD = 10000;
  function tick() {
    var live = document.getElementById("live");
    if (!live || document.hidden) { return setTimeout(tick, PERIOD); }
    fetch(location.pathname + "?fragment=1", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (!fresh) { return; }
        var open = {};
        live.querySelectorAll("details[open]").forEach(function (d) { if (d.id) { open[d.id] = true; } });
        fresh.querySelectorAll("details").forEach(function (d) { if (open[d.id]) { d.open = true; } });
        live.replaceWith(document.adoptNode(fresh));
      })
      .catch(function () {})
      .then(function () { setTimeout(tick, PERIOD); });
  }
  setTimeout(tick, PERIOD);
})();
