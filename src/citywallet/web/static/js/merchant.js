// Merchant console: the cashier page follows its order until it is paid or closed,
// print buttons, and confirmations on buttons marked data-confirm. Own code, no libraries.
(function () {
  "use strict";

  var cashier = document.querySelector("[data-poll]");
  if (cashier) {
    var url = cashier.getAttribute("data-poll");
    var shown = cashier.getAttribute("data-status");
    var poll = function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (answer) { return answer.ok ? answer.json() : null; })
        .then(function (order) {
          if (order && order.status !== shown) {
            window.location.reload();
            return;
          }
          window.setTimeout(poll, 1500);
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    };
    window.setTimeout(poll, 1500);
  }

  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  document.querySelectorAll("[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });
})();
