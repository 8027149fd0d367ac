/* The balance widget's own script, inside its iframe: theme, live balance,
   token refresh from the host page (postMessage, origin-checked), height. */
(function () {
  "use strict";
  var root = document.documentElement;
  var origin = root.getAttribute("data-origin");
  var framed = window.parent !== window;

  if (root.getAttribute("data-theme") === "auto" && window.matchMedia) {
    var mq = window.matchMedia("(prefers-color-scheme: dark)");
    var apply = function () {
      root.classList.toggle("dark", mq.matches);
    };
    apply();
    if (mq.addEventListener) mq.addEventListener("change", apply);
  }

  function post(msg) {
    if (framed && origin) window.parent.postMessage(msg, origin);
  }

  function height() {
    var bottom = 0;
    document.querySelectorAll("main, [data-testid=widget-packs]").forEach(function (el) {
      if (el.closest("details:not([open])")) return; // laid out, but hidden
      var r = el.getBoundingClientRect();
      if (r.height > 0) bottom = Math.max(bottom, r.bottom + window.scrollY);
    });
    if (bottom > 0) post({ type: "tally:height", height: bottom + 4 });
  }

  var field = document.querySelector("[data-token-field]");
  var token = field ? field.value : "";
  var live = document.getElementById("widget-live");
  var es = null;

  function connect() {
    if (!live || !token || !window.EventSource) return;
    if (es) es.close();
    var compact = root.classList.contains("compact") ? "&compact=1" : "";
    es = new EventSource("/embed/events?token=" + encodeURIComponent(token) + compact);
    es.addEventListener("balance", function (e) {
      live.innerHTML = e.data;
      height();
    });
    es.addEventListener("expired", function () {
      es.close();
      post({ type: "tally:expired" });
    });
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) post({ type: "tally:expired" });
    };
  }

  // An expired token's page asks the host page for a new one, and comes
  // back as the widget with it (it has no forms to carry the token).
  var expired = root.hasAttribute("data-expired");
  if (expired) post({ type: "tally:expired" });

  window.addEventListener("message", function (ev) {
    if (ev.source !== window.parent || ev.origin !== origin) return;
    var d = ev.data;
    if (!d || d.type !== "tally:token" || typeof d.token !== "string" || d.token.indexOf("tet1.") !== 0) return;
    if (expired) {
      location.replace("/embed/widget?" + (root.getAttribute("data-reload") || "") + "&token=" + encodeURIComponent(d.token));
      return;
    }
    token = d.token;
    document.querySelectorAll("[data-token-field]").forEach(function (i) {
      i.value = token;
    });
    connect();
  });

  // A loading state on every request the widget makes (each is a page load
  // of the frame): the button says so and cannot be pressed twice.
  document.addEventListener("submit", function (e) {
    var f = e.target;
    var b = f.querySelector("button[type=submit]");
    if (!b || f.target === "_blank") return;
    b.setAttribute("aria-busy", "true");
    b.classList.add("opacity-60");
    if (f.getAttribute("data-busy")) b.textContent = f.getAttribute("data-busy");
    setTimeout(function () {
      b.disabled = true;
    }, 0);
  });
  document.addEventListener("toggle", height, true);
  // Escape closes the pack list (focus back on Top up) or cancels the
  // confirmation, as a dialog's Escape does.
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    var open = document.querySelectorAll("details[open]");
    if (open.length) {
      open.forEach(function (d) {
        d.open = false;
        var s = d.querySelector("summary");
        if (s) s.focus();
      });
      return;
    }
    var cancel = document.querySelector("[data-cancel]");
    if (cancel) cancel.click();
  });
  // Each step is a page of its own (the frame reloads): after a press, the
  // step's first control, or its outcome, takes the focus, so a keyboard
  // stays in the flow and a screen reader reads what happened. The first
  // page of the widget has none: it never takes the focus from the host.
  var first = document.querySelector("[data-autofocus]");
  if (first) first.focus();
  if (window.ResizeObserver) new ResizeObserver(height).observe(document.body);
  height();
  connect();
})();
