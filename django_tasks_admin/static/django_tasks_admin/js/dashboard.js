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
})();
