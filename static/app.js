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

  // The live balance. The header's #balance-pill names its event stream in
  // data-live; each "balance" event replaces the pill, and when the balance
  // changed, "tally:balance" is sent on <body> so every figure drawn from it
  // (hx-trigger="tally:balance from:body") fetches itself again. The stream
  // is closed on pagehide: a page kept in the back/forward cache must not
  // hold one of the six connections HTTP/1.1 allows per host, or the next
  // navigations wait for them. pageshow (a first load, or a page restored
  // from that cache) opens it again; its first event brings the page up to
  // date.
  var live = null;
  var retry = null;
  function pillText() {
    var pill = document.getElementById("balance-pill");
    return pill ? pill.textContent.replace(/\s+/g, " ").trim() : "";
  }
  function balanceChanged() {
    document.body.dispatchEvent(new CustomEvent("tally:balance", { bubbles: true }));
  }
  function openLive() {
    var pill = document.getElementById("balance-pill");
    if (live || !pill || !pill.dataset.live || !window.EventSource) return;
    live = new EventSource(pill.dataset.live);
    // Every event after the first is a committed change to the wallet, so
    // every figure drawn from it fetches itself again, even when the
    // header's text did not move: a purchase can land after the header
    // already showed its credits. The first event (a load, or a page
    // restored from the back/forward cache) does only when the header moved.
    var first = true;
    live.addEventListener("balance", function (evt) {
      var before = pillText();
      pill.innerHTML = evt.data;
      if (window.htmx) window.htmx.process(pill);
      if (!first || pillText() !== before) balanceChanged();
      first = false;
    });
    // A stream the server refused or ended (too many open, a restart) is
    // opened again a little later; meanwhile the header's polling keeps
    // the figures right (see below).
    live.addEventListener("error", function () {
      if (!live || live.readyState !== EventSource.CLOSED) return;
      live = null;
      clearTimeout(retry);
      retry = setTimeout(openLive, 5000);
    });
  }
  function closeLive() {
    clearTimeout(retry);
    if (live) {
      live.close();
      live = null;
    }
  }
  window.addEventListener("pageshow", openLive);
  window.addEventListener("pagehide", closeLive);
  // The header also polls its balance (every 30 s): when that moves it,
  // the figures follow too, stream or no stream.
  var polled = null;
  document.addEventListener("htmx:beforeSwap", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "balance-pill") polled = pillText();
  });
  document.addEventListener("htmx:afterSwap", function (evt) {
    if (!evt.detail.target || evt.detail.target.id !== "balance-pill" || polled === null) return;
    if (pillText() !== polled) balanceChanged();
    polled = null;
  });
  window.tallyLive = function () { return live ? live.readyState : -1; };

  // A payment can take a few seconds: the button that sent it turns its
  // spinner on (and says it is busy) until the answer comes. A page
  // restored from the back/forward cache starts with none turning.
  function busy(btn, on) {
    var sp = btn && btn.querySelector(".spinner");
    if (!sp) return;
    sp.classList.toggle("hidden", !on);
    if (on) btn.setAttribute("aria-busy", "true");
    else btn.removeAttribute("aria-busy");
  }
  document.addEventListener("submit", function (evt) {
    busy(evt.submitter || evt.target.querySelector('button[type="submit"]'), true);
  });
  document.addEventListener("htmx:afterRequest", function () {
    document.querySelectorAll('button[aria-busy="true"]').forEach(function (b) { busy(b, false); });
  });
  window.addEventListener("pageshow", function (evt) {
    if (evt.persisted) document.querySelectorAll('button[aria-busy="true"]').forEach(function (b) { busy(b, false); });
  });

  // After a top-up the product asked for, the customer goes back to it by
  // themselves: the link marked data-auto-return is followed after a short
  // moment, unless they choose to stay (data-stay) or the tab is hidden.
  function autoReturn(root) {
    var a = (root || document).querySelector("a[data-auto-return]");
    if (!a || a.dataset.wired) return;
    a.dataset.wired = "1";
    var timer = setTimeout(function () { window.location.assign(a.href); }, 1500);
    var stay = (root || document).querySelector("[data-stay]");
    if (stay) stay.addEventListener("click", function () { clearTimeout(timer); });
    window.addEventListener("pagehide", function () { clearTimeout(timer); }, { once: true });
  }
  document.addEventListener("DOMContentLoaded", function () { autoReturn(); });
  document.addEventListener("htmx:afterSettle", function (evt) { autoReturn(evt.target); });

  // Dialogs swapped into #modal (the confirmation, a declined payment):
  // the focus moves into the dialog, Tab and Shift+Tab stay inside it, Esc
  // closes it, and the focus goes back to what opened it.
  var opener = null;
  function openDialog() {
    var modal = document.getElementById("modal");
    return modal ? modal.querySelector('[role="dialog"], [role="alertdialog"]') : null;
  }
  function focusables(root) {
    return Array.prototype.filter.call(
      root.querySelectorAll('a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select, textarea, [tabindex]:not([tabindex="-1"])'),
      function (el) { return el.offsetParent !== null; });
  }
  function closeDialog() {
    var modal = document.getElementById("modal");
    if (modal) modal.innerHTML = "";
    if (opener && document.contains(opener)) opener.focus();
    opener = null;
  }
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var t = evt.detail.target;
    if (t && t.id === "modal" && !openDialog()) opener = document.activeElement;
  });
  document.addEventListener("htmx:afterSettle", function (evt) {
    if (!evt.detail.target || evt.detail.target.id !== "modal") return;
    var dlg = openDialog();
    if (!dlg) {
      if (opener && document.contains(opener)) opener.focus();
      opener = null;
      return;
    }
    var first = dlg.querySelector("[autofocus]") || focusables(dlg)[0];
    if (first) first.focus();
  });
  document.addEventListener("keydown", function (evt) {
    var dlg = openDialog();
    if (!dlg) return;
    if (evt.key === "Escape") {
      evt.preventDefault();
      closeDialog();
      return;
    }
    if (evt.key !== "Tab") return;
    var els = focusables(dlg);
    if (!els.length) return;
    var i = els.indexOf(document.activeElement);
    if (evt.shiftKey && (i <= 0)) {
      evt.preventDefault();
      els[els.length - 1].focus();
    } else if (!evt.shiftKey && (i === -1 || i === els.length - 1)) {
      evt.preventDefault();
      els[0].focus();
    }
  });

  // Buttons that print, and "Go back" links that go back when there is a
  // page to go back to (their href is the fallback).
  document.addEventListener("click", function (evt) {
    var el = evt.target.closest ? evt.target.closest("[data-print], [data-back]") : null;
    if (!el) return;
    if (el.hasAttribute("data-print")) {
      window.print();
    } else if (window.history.length > 1) {
      evt.preventDefault();
      window.history.back();
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

  // A form sent back with errors as a whole page (not by htmx): the focus
  // goes to its first field marked invalid, which scrolls it into view, so
  // a phone whose form sits below a list, or a keyboard or screen-reader
  // user, lands where the fix is. A dialog keeps the focus it takes.
  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector('[role="dialog"]')) return;
    var bad = document.querySelector('form [aria-invalid="true"]');
    if (bad && typeof bad.focus === "function") bad.focus();
  });
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
  // A secret shown once: [data-copy="#id"] copies the field's value; the
  // field selects itself when focused ([data-select-all]).
  document.addEventListener("click", function (evt) {
    var btn = evt.target.closest ? evt.target.closest("[data-copy]") : null;
    if (!btn) return;
    var field = document.querySelector(btn.getAttribute("data-copy"));
    if (!field) return;
    field.select();
    // The button says so, and a status region ([data-copy-status] names
    // it) tells screen readers, who do not hear a button's text change.
    var status = document.getElementById(btn.getAttribute("data-copy-status") || "");
    var done = function () {
      btn.textContent = "Copied";
      if (status) status.textContent = "Copied to the clipboard.";
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });
  document.addEventListener("focusin", function (evt) {
    if (evt.target.hasAttribute && evt.target.hasAttribute("data-select-all")) evt.target.select();
  });
})();
