// faultloop dashboard behaviour that htmx does not cover. No inline scripts (CSP script-src 'self').
(function () {
  "use strict";

  function fmt(seconds) {
    var sign = seconds < 0 ? "-" : "";
    seconds = Math.abs(Math.floor(seconds));
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600),
        m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    if (d) return sign + d + "d " + h + "h";
    if (h) return sign + h + "h " + String(m).padStart(2, "0") + "m";
    if (m) return sign + m + "m " + String(s).padStart(2, "0") + "s";
    return sign + s + "s";
  }

  // <span data-deadline="ISO">: time left (counts down, turns 'overdue' when past).
  // <span data-since="ISO">: time elapsed since.
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = (Date.parse(el.dataset.deadline) - now) / 1000;
      if (isNaN(left)) return;
      el.textContent = left < 0 ? "overdue " + fmt(-left) : fmt(left);
      el.classList.toggle("overdue", left < 0);
    });
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var age = (now - Date.parse(el.dataset.since)) / 1000;
      if (!isNaN(age)) el.textContent = fmt(age);
    });
  }
  setInterval(tick, 1000);

  document.addEventListener("click", function (ev) {
    var target = ev.target;
    if (target instanceof Element && target.matches("[data-dismiss=flash]")) {
      var flash = document.getElementById("flash");
      if (flash) flash.innerHTML = "";
    }
  });
  // A successful htmx action clears an old error message.
  document.addEventListener("htmx:afterRequest", function (ev) {
    var flash = document.getElementById("flash");
    if (flash && ev.detail && ev.detail.successful && ev.detail.target !== flash) flash.innerHTML = "";
  });
})();
