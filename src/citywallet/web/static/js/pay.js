// Scan to pay and the payment code (own code, no libraries).
(function () {
  "use strict";

  // --- scan with the camera: getUserMedia + BarcodeDetector, where the browser has both ---
  var camera = document.querySelector("[data-scan-camera]");
  if (camera && "BarcodeDetector" in window && navigator.mediaDevices &&
      navigator.mediaDevices.getUserMedia) {
    camera.hidden = false;
    var start = camera.querySelector("[data-scan-start]");
    var video = camera.querySelector("[data-scan-video]");
    var looking = camera.querySelector("[data-scan-looking]");
    var failed = camera.querySelector("[data-scan-failed]");
    var stream = null;
    var stop = function () {
      if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
    };
    var found = function (text) {
      stop();
      window.location.assign("/app/scan/preview?payload=" + encodeURIComponent(text));
    };
    start.addEventListener("click", function () {
      var detector;
      try {
        detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      } catch (e) {
        failed.hidden = false;
        return;
      }
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
        .then(function (s) {
          stream = s;
          video.srcObject = s;
          video.hidden = false;
          looking.hidden = false;
          start.hidden = true;
          return video.play();
        })
        .then(function () {
          var tick = function () {
            if (!stream) { return; }
            detector.detect(video).then(function (codes) {
              var hit = codes.find(function (c) { return c.rawValue; });
              if (hit) { found(hit.rawValue); } else { window.setTimeout(tick, 250); }
            }).catch(function () { window.setTimeout(tick, 500); });
          };
          tick();
        })
        .catch(function () { stop(); failed.hidden = false; });
    });
    window.addEventListener("pagehide", stop);
  }

  // --- the payment code: a new code every minute, with a countdown ---
  var box = document.querySelector("[data-paycode]");
  if (box) {
    var device = box.getAttribute("data-device");
    var until = parseInt(box.getAttribute("data-valid-until"), 10);
    var countdown = document.querySelector("[data-countdown]");
    var barcode = box.querySelector("[data-barcode]");
    var qr = box.querySelector("[data-qr]");
    var digits = box.querySelector("[data-code]");
    var busy = false;
    var refresh = function () {
      if (busy) { return; }
      busy = true;
      fetch("/app/paycode/" + encodeURIComponent(device) + "/code.json", {
        credentials: "same-origin", headers: { "Accept": "application/json" }
      }).then(function (r) {
        if (!r.ok) { throw new Error(String(r.status)); }
        return r.json();
      }).then(function (data) {
        until = data.valid_until_ms;
        barcode.src = data.barcode_url;
        qr.src = data.qr_url;
        digits.textContent = data.code;
      }).catch(function () {
        until = Date.now() + 5000;  // try again shortly
      }).then(function () { busy = false; });
    };
    var tick = function () {
      var left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      countdown.textContent = String(left);
      if (left <= 0) { refresh(); }
    };
    tick();
    window.setInterval(tick, 1000);
    // A charge waiting for confirmation is pushed to every page by app-live.js (server-sent
    // events), not polled here.
  }
})();
