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

  // <div data-refresh-s="30" hx-trigger="..., refresh">: re-fetched every N seconds so changes made
  // by others (automation, colleagues) show up; skipped while the page is hidden or the user is
  // busy inside it (a focused or edited field, a <details> opened or closed by hand).
  function markRendered(root) {
    root.querySelectorAll("details").forEach(function (d) { d.dataset.renderedOpen = d.open ? "1" : "0"; });
  }
  function busy(el) {
    if (el.contains(document.activeElement) && document.activeElement !== el) return true;
    var edited = Array.prototype.some.call(el.querySelectorAll("input, textarea, select"), function (f) {
      if (f.tagName === "SELECT") {
        return Array.prototype.some.call(f.options, function (o) { return o.selected !== o.defaultSelected; });
      }
      if (f.type === "checkbox" || f.type === "radio") return f.checked !== f.defaultChecked;
      return f.value !== f.defaultValue;
    });
    if (edited) return true;
    return Array.prototype.some.call(el.querySelectorAll("details"), function (d) {
      return d.dataset.renderedOpen !== undefined && (d.open ? "1" : "0") !== d.dataset.renderedOpen;
    });
  }
  var lastRefresh = new WeakMap();
  setInterval(function () {
    if (document.hidden || !window.htmx) return;
    var now = Date.now();
    document.querySelectorAll("[data-refresh-s]").forEach(function (el) {
      var every = 1000 * Number(el.dataset.refreshS);
      if (!lastRefresh.has(el)) lastRefresh.set(el, now);
      if (!(every > 0) || now - lastRefresh.get(el) < every || busy(el)) return;
      lastRefresh.set(el, now);
      window.htmx.trigger(el, "refresh");
    });
  }, 1000);
  document.addEventListener("DOMContentLoaded", function () { markRendered(document); });
  document.addEventListener("htmx:load", function (ev) { if (ev.detail && ev.detail.elt) markRendered(ev.detail.elt); });

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
