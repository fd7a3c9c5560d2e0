// Alarm console: live refresh from the alarm stream, and the detail panel's close button.
// No inline scripts (CSP script-src 'self'); htmx does the requests.
(function () {
  "use strict";

  // The stream's `alarm` events reach #alarm-live (hx-trigger="sse:alarm") and bubble here. The table
  // refreshes at most once per WINDOW_MS, and always once more after the last event of a burst, so a
  // storm never floods the server and the final state is never missed (htmx's own throttle drops the
  // trailing events, and its state would reset with every swapped-in table).
  var WINDOW_MS = 1000;
  var last = 0;
  var pending = null;

  function refresh() {
    last = Date.now();
    var table = document.getElementById("alarm-table");
    if (table && window.htmx) window.htmx.trigger(table, "alarms-refresh");
  }

  document.addEventListener("sse:alarm", function () {
    if (pending) return;
    var wait = last + WINDOW_MS - Date.now();
    if (wait <= 0) {
      refresh();
    } else {
      pending = setTimeout(function () { pending = null; refresh(); }, wait);
    }
  });

  // After a reconnect, changes made while the stream was down were not seen: refresh once.
  var opened = 0;
  document.addEventListener("htmx:sseOpen", function () {
    opened += 1;
    if (opened > 1) refresh();
  });

  document.addEventListener("click", function (ev) {
    var target = ev.target;
    if (!(target instanceof Element) || !target.matches("[data-close=alarm-detail]")) return;
    var panel = document.getElementById("alarm-detail");
    if (panel && !panel.classList.contains("page")) {
      panel.innerHTML = "";
    } else {
      window.location.assign("/");
    }
  });
})();
