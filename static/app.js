// kaas console enhancements. Every page works without this file; it only adds
// (1) live workspace status: while a badge on the page shows a state that will change
//     by itself, poll GET /status?ws=… and update badges and messages in place; once a
//     workspace is Ready, what waited for it ([data-until-ready]) is offered: disabled
//     controls are enabled, notes saying "not yet" are hidden;
// (2) copy buttons for secrets shown once;
// (3) a form sent back with errors brings its first invalid field into view and focus (the
//     page starts at the top, and the form may be far below);
// (4) print buttons on invoices.
(function () {
  "use strict";

  function badges() { return Array.prototype.slice.call(document.querySelectorAll(".badge[data-ws]")); }
  function settling(b) {
    var s = b.getAttribute("data-state");
    return s !== "Ready" && s !== "Deleted";
  }

  var delay = 3000;
  function poll() {
    var open = badges().filter(settling);
    if (!open.length) return;
    if (document.hidden) { setTimeout(poll, delay); return; }
    var seen = {};
    var q = open.map(function (b) { return b.getAttribute("data-ws"); })
      .filter(function (id) { return seen[id] ? false : (seen[id] = true); })
      .map(function (id) { return "ws=" + encodeURIComponent(id); }).join("&");
    fetch("/status?" + q, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        var json = (r.headers.get("content-type") || "").indexOf("application/json") === 0;
        if (!r.ok || !json) throw new Error("stop");
        return r.json();
      })
      .then(function (rows) {
        var changed = false;
        // A workspace the server no longer lists has finished deleting.
        var listed = {};
        rows.forEach(function (row) { listed[row.id] = true; });
        Object.keys(seen).forEach(function (id) {
          if (!listed[id]) rows.push({ id: id, state: "Deleted", "class": "st-gone", message: "deleted" });
        });
        rows.forEach(function (row) {
          badges().forEach(function (b) {
            if (b.getAttribute("data-ws") !== row.id) return;
            if (b.getAttribute("data-state") !== row.state) changed = true;
            b.className = "badge " + row["class"];
            b.setAttribute("data-state", row.state);
            var t = b.querySelector(".badge-text");
            if (t) t.textContent = row.state;
          });
          document.querySelectorAll("[data-ws-msg]").forEach(function (m) {
            if (m.getAttribute("data-ws-msg") === row.id) m.textContent = row.message;
          });
          if (row.state === "Ready") ready(row.id);
        });
        // Poll briskly while things move, then back off to at most 15 s.
        delay = changed ? 3000 : Math.min(delay * 1.5, 15000);
        setTimeout(poll, delay);
      })
      .catch(function () { /* signed out or offline: a reload shows the truth */ });
  }

  // Offers what waited for workspace `id` to be Ready: notes go, controls come on (and stop
  // pointing screen readers at the notes that went).
  function ready(id) {
    var waiting = Array.prototype.slice.call(document.querySelectorAll("[data-until-ready]"))
      .filter(function (e) { return e.getAttribute("data-until-ready") === id; });
    var gone = [];
    waiting.forEach(function (e) {
      if ("disabled" in e) return;
      e.hidden = true;
      if (e.id) gone.push(e.id);
    });
    waiting.forEach(function (e) {
      if (!("disabled" in e)) return;
      e.disabled = false;
      var refs = (e.getAttribute("aria-describedby") || "").split(" ")
        .filter(function (r) { return r && gone.indexOf(r) < 0; });
      if (refs.length) e.setAttribute("aria-describedby", refs.join(" "));
      else e.removeAttribute("aria-describedby");
    });
  }

  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (btn) {
      var target = document.getElementById(btn.getAttribute("data-copy"));
      if (!target) return;
      btn.hidden = false;
      btn.addEventListener("click", function () {
        var done = function () {
          btn.textContent = "Copied";
          setTimeout(function () { btn.textContent = "Copy"; }, 2000);
        };
        target.select();
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(target.value).then(done, function () {
            if (document.execCommand("copy")) done();
          });
        } else if (document.execCommand("copy")) {
          done();
        }
      });
    });
    document.querySelectorAll("[data-print]").forEach(function (btn) {
      btn.addEventListener("click", function () { window.print(); });
    });
    document.querySelectorAll(".js-only").forEach(function (e) { e.hidden = false; });
  }

  function showErrors() {
    var bad = document.querySelector("main [aria-invalid=\"true\"]");
    if (bad) { bad.focus(); return; }
    var general = document.querySelector("main .form-error");
    if (general) general.scrollIntoView({ block: "center" });
  }

  document.addEventListener("DOMContentLoaded", function () {
    copyButtons();
    showErrors();
    setTimeout(poll, delay);
  });
})();
