// django_tasks_admin: small enhancements; every page works without JavaScript.
(function () {
  "use strict";

  // "Select all" in the results table header.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.classList || !box.classList.contains("dt-select-all")) return;
    document.querySelectorAll("input.dt-select").forEach(function (input) {
      input.checked = box.checked;
    });
  });

  // Keep empty filter fields out of the query string (shorter, shareable URLs).
  document.addEventListener("htmx:configRequest", function (event) {
    var params = event.detail.parameters;
    if (!params || event.detail.verb !== "get") return;
    var names = params instanceof FormData ? Array.from(params.keys()) : Object.keys(params);
    names.forEach(function (name) {
      var value = params instanceof FormData ? params.get(name) : params[name];
      if (value === "") {
        if (params instanceof FormData) params.delete(name);
        else delete params[name];
      }
    });
  });
  // The "Live" notes tell the truth: polling stops while the tab is hidden (the
  // regions' hx-trigger filters on visibilityState), and a failed poll says so.
  function showLive(state) {
    document.querySelectorAll(".dt-live-note[data-dt-live]").forEach(function (note) {
      if (note.dataset.dtLive === "off") return;
      var next = document.visibilityState === "visible" ? state || "on" : "paused";
      if (next === "error" && note.dataset.dtLive === "paused") next = "paused";
      note.dataset.dtLive = next;
      note.textContent =
        next === "paused" ? note.dataset.pausedText :
        next === "error" ? note.dataset.errorText : note.dataset.liveText;
    });
  }
  document.addEventListener("visibilitychange", function () { showLive(); });
  document.addEventListener("DOMContentLoaded", function () { showLive(); });
  document.addEventListener("htmx:afterSettle", function () { showLive(); });
  document.addEventListener("htmx:afterRequest", function (event) {
    var ok = event.detail.successful || (event.detail.xhr && event.detail.xhr.status === 204);
    showLive(ok ? "on" : "error");
  });
  document.addEventListener("htmx:sendError", function () { showLive("error"); });
})();
