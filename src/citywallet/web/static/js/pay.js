// Scan to pay and the payment code (own code; the QR ponyfill is loaded from /vendor on demand).
(function () {
  "use strict";

  // --- scan with the camera ---
  // getUserMedia for the frames; the browser's own BarcodeDetector where it reads QR codes
  // (Android Chrome), else the barcode-detector ponyfill (ZXing's WebAssembly) loaded from
  // this server on demand (iPhone Safari, desktop browsers). If that cannot load, a tap
  // takes one frame and sends it through the upload form to the server's reader.
  var camera = document.querySelector("[data-scan-camera]");
  if (camera && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    camera.hidden = false;
    var noCamera = document.querySelector("[data-scan-no-camera]");
    var start = camera.querySelector("[data-scan-start]");
    var video = camera.querySelector("[data-scan-video]");
    var looking = camera.querySelector("[data-scan-looking]");
    var failed = camera.querySelector("[data-scan-failed]");
    var capture = camera.querySelector("[data-scan-capture]");
    var upload = document.querySelector("[data-scan-upload]");
    var stream = null;
    var stop = function () {
      if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
    };
    var found = function (text) {
      stop();
      window.location.assign("/app/scan/preview?payload=" + encodeURIComponent(text));
    };
    var nativeDetector = function () {
      if (!("BarcodeDetector" in window)) { return Promise.resolve(null); }
      var probe = window.BarcodeDetector.getSupportedFormats ?
        window.BarcodeDetector.getSupportedFormats() : Promise.resolve(["qr_code"]);
      return probe.then(function (formats) {
        return formats.indexOf("qr_code") >= 0 ?
          new window.BarcodeDetector({ formats: ["qr_code"] }) : null;
      }).catch(function () { return null; });
    };
    var loadPonyfill = function () {
      return new Promise(function (resolve, reject) {
        if (window.BarcodeDetectionAPI) { resolve(window.BarcodeDetectionAPI); return; }
        var script = document.createElement("script");
        script.src = camera.getAttribute("data-polyfill");
        script.onload = function () {
          if (window.BarcodeDetectionAPI) { resolve(window.BarcodeDetectionAPI); }
          else { reject(new Error("no ponyfill")); }
        };
        script.onerror = function () { reject(new Error("ponyfill not served")); };
        document.head.appendChild(script);
      }).then(function (api) {
        var wasm = camera.getAttribute("data-wasm");
        // our own copy of the reader, not the package's default CDN; instantiated now so
        // that a reader that cannot load falls back to sending a frame
        return Promise.resolve(api.prepareZXingModule({
          overrides: {
            locateFile: function (path, prefix) {
              return path.slice(-5) === ".wasm" ? wasm + path : prefix + path;
            }
          },
          fireImmediately: true
        })).then(function () { return new api.BarcodeDetector({ formats: ["qr_code"] }); });
      });
    };
    var detector = function () {
      return nativeDetector().then(function (own) { return own || loadPonyfill(); });
    };
    var sendFrame = function () {
      // the server's reader (POST /app/scan/image) through the upload form and its CSRF field
      var canvas = document.createElement("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);
      canvas.toBlob(function (blob) {
        var files = new DataTransfer();
        files.items.add(new File([blob], "camera.png", { type: "image/png" }));
        upload.querySelector("input[type=file]").files = files.files;
        stop();
        upload.submit();
      }, "image/png");
    };
    var watch = function (reader) {
      var tick = function () {
        if (!stream) { return; }
        reader.detect(video).then(function (codes) {
          var hit = codes.find(function (c) { return c.rawValue; });
          if (hit) { found(hit.rawValue); } else { window.setTimeout(tick, 250); }
        }).catch(function () { window.setTimeout(tick, 500); });
      };
      tick();
    };
    start.addEventListener("click", function () {
      var reading = detector().catch(function () { return null; });
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
        .then(function (s) {
          stream = s;
          video.srcObject = s;
          video.hidden = false;
          looking.hidden = false;
          start.hidden = true;
          if (noCamera) { noCamera.hidden = true; }
          return video.play();
        })
        .then(function () { return reading; })
        .then(function (reader) {
          if (reader) { watch(reader); }
          else if (upload) { capture.hidden = false; }
        })
        .catch(function () { stop(); failed.hidden = false; });
    });
    if (capture) { capture.addEventListener("click", sendFrame); }
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
