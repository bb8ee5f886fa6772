// Resident app behaviour (own code, no libraries).
"use strict";

// Installable app: register the service worker for /app and below (secure contexts only).
if ("serviceWorker" in navigator && window.isSecureContext) {
  window.addEventListener("load", () => {
    navigator.serviceWorker.register("/app/sw.js", { scope: "/app" }).then(
      (registration) => { document.documentElement.dataset.sw = registration.scope; },
      () => { document.documentElement.dataset.sw = "failed"; }
    );
  });
}

// A form submits once: a second press while the first is on its way does nothing.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  if (form.dataset.sent === "1") {
    event.preventDefault();
    return;
  }
  if (form.method.toLowerCase() === "post") form.dataset.sent = "1";
});

// Coming back to a page (history): its forms may be sent again.
window.addEventListener("pageshow", () => {
  document.querySelectorAll("form[data-sent]").forEach((form) => { delete form.dataset.sent; });
});
