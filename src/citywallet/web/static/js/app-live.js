// The residents' wallet, live (own code, no libraries): the unread badge on the tab bar and
// a bar for a payment-code charge waiting for confirmation, on every page. The server pushes
// them as server-sent events (GET /v1/messages/stream, woken right after the commit that
// changed them); while EventSource is missing or cannot connect, the page asks
// GET /v1/messages/state every 2 s instead, and stops asking once the stream is back.
(function () {
  "use strict";
  var badge = document.querySelector("[data-unread]");
  var count = document.querySelector("[data-unread-count]");
  var bar = document.querySelector("[data-charge-alert]");
  var link = document.querySelector("[data-charge-link]");
  var what = document.querySelector("[data-charge-what]");
  if (!badge && !bar) { return; }

  var money = function (fen) {
    var yuan = Math.floor(Math.abs(fen) / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    var cents = ("0" + (Math.abs(fen) % 100)).slice(-2);
    return (fen < 0 ? "-" : "") + "\u00a5" + yuan + "." + cents;
  };

  var show = function (state) {
    if (count && badge) {
      count.textContent = String(state.unread);
      badge.hidden = state.unread === 0;
    }
    if (!bar) { return; }
    var charge = state.charges && state.charges[0];
    if (charge && window.location.pathname !== charge.link) {
      link.setAttribute("href", charge.link);
      what.textContent = charge.merchant + " \u00b7 " + money(charge.amount);
      bar.hidden = false;
    } else {
      bar.hidden = true;
    }
  };

  var timer = null;
  var ask = function () {
    fetch("/v1/messages/state", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (state) { if (state) { show(state); } })
      .catch(function () { /* offline: the next tick tries again */ });
  };
  // How the page hears news now ("stream" or "poll"): for people debugging, and the tests.
  var mode = function (how) { document.documentElement.setAttribute("data-live", how); };
  var poll = function () {
    if (timer === null) { mode("poll"); ask(); timer = window.setInterval(ask, 2000); }
  };
  var stopPolling = function () {
    if (timer !== null) { window.clearInterval(timer); timer = null; }
    mode("stream");
  };

  var listen = function () {
    if (typeof window.EventSource !== "function") { poll(); return; }
    var source;
    try {
      source = new window.EventSource("/v1/messages/stream");
    } catch (e) {
      poll();
      return;
    }
    source.addEventListener("state", function (event) {
      try { show(JSON.parse(event.data)); } catch (e) { /* a torn message: the next one heals */ }
    });
    source.addEventListener("open", stopPolling);
    // The browser reconnects by itself (the stream says retry: 2000); until it is back, poll.
    source.addEventListener("error", poll);
    window.addEventListener("pagehide", function () { source.close(); stopPolling(); });
  };
  // Open the stream once the page has loaded and settled: a long-lived request from the
  // start would keep the page "loading" for tools that wait for the network to go quiet.
  // Its first message is the state as of then, so nothing committed meanwhile is missed.
  var later = function () { window.setTimeout(listen, 1000); };
  if (document.readyState === "complete") { later(); } else { window.addEventListener("load", later); }
})();
