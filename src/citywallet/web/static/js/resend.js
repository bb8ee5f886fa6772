// "Send a new code": disabled with a countdown until the server accepts another SMS request
// (data-resend-after, seconds; the server enforces the interval anyway). Own code.
"use strict";

document.querySelectorAll("button[data-resend-after]").forEach((button) => {
  const label = button.textContent;
  const template = button.dataset.waitText || "{s}";
  const until = Date.now() + Number(button.dataset.resendAfter || 0) * 1000;
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      button.disabled = false;
      button.textContent = label;
      button.removeAttribute("data-counting");
      return;
    }
    button.disabled = true;
    button.dataset.counting = String(left);
    button.textContent = template.replace("{s}", String(left));
    window.setTimeout(tick, 250);
  };
  tick();
});
