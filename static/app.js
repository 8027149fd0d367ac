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

  // A form that comes back with errors (a 422) takes the customer to its
  // first wrong field, errors shown beside each: on a phone the form may
  // be below the fold, where a message at the top would go unseen.
  document.addEventListener("htmx:afterSettle", function (evt) {
    var xhr = evt.detail.xhr;
    if (!xhr || xhr.status !== 422) return;
    var bad = evt.detail.elt && evt.detail.elt.querySelector ? evt.detail.elt.querySelector('[aria-invalid="true"]') : null;
    if (!bad) bad = document.querySelector('[aria-invalid="true"]');
    if (bad) {
      bad.focus();
      if (bad.scrollIntoView) bad.scrollIntoView({ block: "center" });
    }
  });
})();
