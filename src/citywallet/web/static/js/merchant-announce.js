// The merchant overview on a phone: 今日收款 kept current, and each payment received
// spoken aloud like a payment speaker ("收款 88 元") with the Web Speech API, when the
// owner turns it on (remembered in this browser). Own code, no libraries.
(function () {
  "use strict";

  var box = document.querySelector("[data-takings]");
  if (!box) { return; }
  var url = box.getAttribute("data-takings");
  var since = box.getAttribute("data-since");
  var phrase = box.getAttribute("data-say");
  var lang = box.getAttribute("data-lang") || "zh-CN";
  var amount = box.querySelector("[data-takings-amount]");
  var count = box.querySelector("[data-takings-count]");
  var toggle = box.querySelector("[data-announce-toggle]");
  var last = box.querySelector("[data-announce-last]");
  var KEY = "cw-announce-payments";
  var speech = window.speechSynthesis;

  var stored = function () {
    try { return window.localStorage.getItem(KEY) === "on"; } catch (e) { return false; }
  };
  var remember = function (on) {
    try { window.localStorage.setItem(KEY, on ? "on" : "off"); } catch (e) { /* private mode */ }
  };
  var say = function (text) {
    last.textContent = text;
    if (!speech || !toggle.checked) { return; }
    var utterance = new window.SpeechSynthesisUtterance(text);
    utterance.lang = lang;
    speech.speak(utterance);
  };

  if (!speech || !window.SpeechSynthesisUtterance) {
    toggle.disabled = true;
    box.querySelector("[data-announce-unsupported]").hidden = false;
  } else {
    toggle.checked = stored();
    toggle.addEventListener("change", function () {
      remember(toggle.checked);
      // spoken inside the tap: browsers (Safari) allow speech once a gesture started it
      if (toggle.checked) { say(box.getAttribute("data-say-on")); }
      else { speech.cancel(); }
    });
  }

  var poll = function () {
    fetch(url + "?since=" + encodeURIComponent(since), {
      credentials: "same-origin", headers: { Accept: "application/json" }
    }).then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (data) {
        if (data) {
          amount.textContent = data.amount_text;
          count.textContent = String(data.count);
          data.received.forEach(function (payment) {
            since = String(payment.paid_at);
            say(phrase.replace("%(yuan)s", payment.yuan));
          });
        }
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  };
  window.setTimeout(poll, 2000);
})();
