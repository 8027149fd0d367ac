/* Tally balance widget. <script src="https://TALLY/widget.js" data-token="…" async></script>
   Draws the balance in an iframe (isolated from the page), and keeps its token fresh:
   data-refresh-url (POST, JSON {token}), or window.TallyWidget.onTokenExpiring = async () => newToken. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) return;
  var base = new URL(script.src).origin;
  var TW = (window.TallyWidget = window.TallyWidget || {});
  var widgets = (TW._w = TW._w || []);
  // refresh() fetches a new token now (after the page's sign-in changed).
  TW.refresh = function () {
    widgets.forEach(function (f) {
      f();
    });
  };

  function claims(t) {
    try {
      var p = String(t).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (p.length % 4) p += "=";
      return JSON.parse(atob(p));
    } catch (e) {
      return null;
    }
  }

  function mount(el) {
    var token = el.getAttribute("data-token");
    if (!token) {
      console.warn("Tally widget: data-token is missing");
      return;
    }
    var compact = el.hasAttribute("data-compact") && el.getAttribute("data-compact") !== "false";
    var q = new URLSearchParams({ token: token, theme: el.getAttribute("data-theme") || "auto" });
    if (el.getAttribute("data-accent")) q.set("accent", el.getAttribute("data-accent"));
    if (compact) q.set("compact", "1");
    var frame = document.createElement("iframe");
    frame.src = base + "/embed/widget?" + q.toString();
    frame.title = el.getAttribute("data-title") || "Credit balance";
    frame.setAttribute("data-tally-widget", "");
    frame.style.cssText = "border:0;width:100%;display:block;background:transparent;height:" + (compact ? 64 : 132) + "px";
    var target = el.getAttribute("data-target") && document.querySelector(el.getAttribute("data-target"));
    if (target) target.appendChild(frame);
    else el.parentNode.insertBefore(frame, el.nextSibling);

    var refreshURL = el.getAttribute("data-refresh-url");
    var timer = 0, tries = 0, busy = false;

    function fetchToken() {
      if (refreshURL) {
        return fetch(refreshURL, { method: "POST", credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (r) {
            if (!r.ok) throw new Error("refresh answered " + r.status);
            return r.json();
          })
          .then(function (b) {
            return b && b.token;
          });
      }
      if (typeof TW.onTokenExpiring === "function") {
        return Promise.resolve().then(function () {
          return TW.onTokenExpiring({ element: el, token: token });
        });
      }
      return null;
    }

    function refresh() {
      if (busy) return;
      var p = fetchToken();
      if (!p) return;
      busy = true;
      p.then(function (t) {
        if (typeof t !== "string" || !t) throw new Error("no token");
        token = t;
        tries = 0;
        if (frame.contentWindow) frame.contentWindow.postMessage({ type: "tally:token", token: t }, base);
        schedule();
      })
        .catch(function (e) {
          tries++;
          console.warn("Tally widget: token refresh failed", e);
          clearTimeout(timer);
          timer = setTimeout(refresh, Math.min(60000, 5000 * tries));
        })
        .then(function () {
          busy = false;
        });
    }

    function schedule() {
      var c = claims(token);
      if (!c || !c.x) return;
      clearTimeout(timer);
      // Two minutes before it ends (timers may sleep with the tab: the
      // frame also says when its token has expired).
      timer = setTimeout(refresh, Math.max(5000, c.x * 1000 - Date.now() - 120000));
    }

    window.addEventListener("message", function (ev) {
      if (ev.origin !== base || ev.source !== frame.contentWindow) return;
      var d = ev.data;
      if (!d || typeof d !== "object") return;
      if (d.type === "tally:height" && typeof d.height === "number") {
        frame.style.height = Math.min(Math.max(Math.ceil(d.height), 40), 1200) + "px";
      } else if (d.type === "tally:expired") {
        refresh();
      }
    });
    document.addEventListener("visibilitychange", function () {
      var c = claims(token);
      if (document.visibilityState === "visible" && c && c.x * 1000 - Date.now() < 120000) refresh();
    });
    widgets.push(refresh);
    schedule();
  }

  mount(script);
})();
