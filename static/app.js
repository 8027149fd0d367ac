// Tally's pages work without this file; it adds what HTML cannot do alone.
(function () {
  "use strict";
  // The customer's time zone, so the server renders dates in it.
  try {
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz && document.cookie.indexOf("tz=" + encodeURIComponent(tz)) < 0) {
      document.cookie = "tz=" + encodeURIComponent(tz) + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) {}

  // htmx sends the CSRF token (from <meta name="csrf-token">) with every request.
  document.addEventListener("htmx:configRequest", function (evt) {
    var m = document.querySelector('meta[name="csrf-token"]');
    if (m) evt.detail.headers["X-CSRF-Token"] = m.content;
  });

  // htmx 2 swaps no 4xx/5xx answer by default. Ours are meant to be seen: a
  // 422 is a form or filter shown again with what is wrong, and an error the
  // server retargets (HX-Retarget: #flash) is a message for the flash area.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    if (xhr.status === 422 || (xhr.status >= 400 && xhr.getResponseHeader("HX-Retarget"))) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });

  // The live balance's event stream closes when the page is left. A page
  // kept in the back/forward cache would otherwise keep its stream open, and
  // after six pages the browser has no connection left for this site (six
  // per host over HTTP/1.1): every click hangs. A page shown again from that
  // cache is reloaded, as its balance is stale and its stream gone.
  var streams = [];
  if (window.htmx && htmx.createEventSource) {
    var createEventSource = htmx.createEventSource;
    htmx.createEventSource = function (url) {
      var source = createEventSource(url);
      streams.push(source);
      return source;
    };
  }
  window.addEventListener("pagehide", function () {
    streams.forEach(function (source) { source.close(); });
    streams = [];
  });
  window.addEventListener("pageshow", function (evt) {
    if (evt.persisted) location.reload();
  });

  // A flash message fades out after a while; its close button works at once.
  function wireFlash(root) {
    (root || document).querySelectorAll("[data-flash]").forEach(function (el) {
      if (el.dataset.wired) return;
      el.dataset.wired = "1";
      var close = el.querySelector("[data-flash-close]");
      if (close) close.addEventListener("click", function () { el.remove(); });
      if (el.dataset.flash !== "sticky") setTimeout(function () { el.remove(); }, 8000);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { wireFlash(); });
  document.addEventListener("htmx:afterSwap", function (evt) { wireFlash(evt.target); });

  // A [data-print] button prints the page (the receipt): no inline onclick,
  // which the Content-Security-Policy forbids.
  document.addEventListener("click", function (evt) {
    if (evt.target.closest && evt.target.closest("[data-print]")) window.print();
  });
})();
