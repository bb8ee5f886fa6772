// Red packets and campaigns (own code, no libraries).
(function () {
  "use strict";

  // --- send form: show the fields of the chosen target (person or group) ---
  var form = document.querySelector("[data-send-form]");
  if (form) {
    var sync = function () {
      var chosen = form.querySelector("input[name=target]:checked");
      var target = chosen ? chosen.value : "person";
      form.querySelectorAll("[data-for-target]").forEach(function (part) {
        part.hidden = part.getAttribute("data-for-target") !== target;
      });
    };
    form.querySelectorAll("input[name=target]").forEach(function (radio) {
      radio.addEventListener("change", sync);
    });
    sync();
  }

  // --- expiry countdowns of campaign red packets ---
  var texts = document.querySelector("[data-countdown-texts]");
  var timers = document.querySelectorAll("[data-until]");
  if (texts && timers.length) {
    var pick = function (name) {
      return texts.content.querySelector("[data-" + name + "]").textContent;
    };
    var fill = function (pattern, values) {
      return pattern.replace(/%\((\w)\)s/g, function (_m, k) { return String(values[k]); });
    };
    var render = function () {
      timers.forEach(function (timer) {
        var left = Math.floor((parseInt(timer.getAttribute("data-until"), 10) - Date.now()) / 1000);
        var out = timer.querySelector("[data-left]");
        if (left <= 0) { out.textContent = pick("over"); return; }
        var d = Math.floor(left / 86400), h = Math.floor(left % 86400 / 3600);
        var m = Math.floor(left % 3600 / 60), s = left % 60;
        var values = { d: d, h: h, m: m, s: s };
        out.textContent = d > 0 ? fill(pick("days"), values)
          : h > 0 ? fill(pick("hours"), values) : fill(pick("minutes"), values);
      });
    };
    render();
    window.setInterval(render, 1000);
  }

  // --- check the draw: recompute SHA-256(seed) and HMAC-SHA256(seed, registration id) ---
  var box = document.querySelector("[data-verify]");
  if (box) {
    var hexToBytes = function (hex) {
      var out = new Uint8Array(hex.length / 2);
      for (var i = 0; i < out.length; i++) { out[i] = parseInt(hex.substr(i * 2, 2), 16); }
      return out;
    };
    var toHex = function (buffer) {
      return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
    };
    var show = function (name) {
      ["ok", "bad", "unavailable"].forEach(function (n) {
        box.querySelector("[data-verify-" + n + "]").hidden = n !== name;
      });
    };
    box.querySelector("[data-verify-run]").addEventListener("click", function () {
      var subtle = window.crypto && window.crypto.subtle;
      if (!subtle) { show("unavailable"); return; }
      var seed = hexToBytes(box.getAttribute("data-seed"));
      var id = new TextEncoder().encode(box.getAttribute("data-registration-id"));
      Promise.all([
        subtle.digest("SHA-256", seed),
        subtle.importKey("raw", seed, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])
          .then(function (key) { return subtle.sign("HMAC", key, id); })
      ]).then(function (results) {
        var commitmentOk = toHex(results[0]) === box.getAttribute("data-commitment");
        var ticketOk = toHex(results[1]) === box.getAttribute("data-expected");
        box.setAttribute("data-computed", toHex(results[1]));
        show(commitmentOk && ticketOk ? "ok" : "bad");
      }).catch(function () { show("unavailable"); });
    });
  }
})();
