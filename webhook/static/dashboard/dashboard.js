// Refreshes the dashboard's panels without a reload: fetch /dashboard/panels (the server renders them with the
// same template as the page), swap them in, and come back in data-refresh milliseconds. Signed out (401): reload,
// which shows the sign-in form. Hidden tabs skip their turn.
(function () {
  "use strict";
  var panels = document.getElementById("panels");
  var status = document.getElementById("refresh-status");
  if (!panels) { return; }
  var every = Number(panels.getAttribute("data-refresh")) || 2000;
  var source = panels.getAttribute("data-source");

  function say(text, ok) {
    if (status) { status.textContent = text; status.className = ok ? "muted" : "error"; }
  }

  function tick() {
    if (document.hidden) { setTimeout(tick, every); return; }
    fetch(source, {credentials: "same-origin", cache: "no-store", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        panels.innerHTML = html;
        say("updated " + new Date().toISOString().replace(/\.\d+Z$/, "Z"), true);
      })
      .catch(function (error) { say("not updated: " + error.message, false); })
      .then(function () { setTimeout(tick, every); });
  }

  setTimeout(tick, every);
})();
