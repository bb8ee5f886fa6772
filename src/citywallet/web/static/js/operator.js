// Operator console: confirm destructive actions, keep the campaign dashboard live.
(function () {
  "use strict";
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });
  var live = document.querySelector("[data-live]");
  if (live) {
    var seconds = parseInt(live.getAttribute("data-live"), 10) || 30;
    window.setInterval(function () {
      var active = document.activeElement;
      var typing = active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
      if (!typing && document.visibilityState === "visible") {
        window.location.reload();
      }
    }, seconds * 1000);
  }
})();
