// The payment PIN pad: every PIN box of the resident app (input[data-pinpad]) becomes a
// bottom sheet with a 6-digit keypad that submits its form on the 6th digit. On a form
// that allows it (form[data-passkey-intent]) and for a resident with a passkey, the sheet
// offers "use fingerprint/face": the server hands out a challenge bound to this payment
// (POST /app/passkeys/pay-options with the form's own fields), the authenticator signs it,
// and the form posts the assertion instead of the PIN. Without JavaScript the plain box
// works as before. Own code, no dependencies.
(function () {
  "use strict";
  var sheet = document.querySelector("[data-pinpad-sheet]");
  var inputs = document.querySelectorAll("input[data-pinpad]");
  if (!sheet || !inputs.length) { wireStepUp(); return; }

  var dots = sheet.querySelectorAll("[data-pinpad-dots] span");
  var errorLine = sheet.querySelector("[data-pinpad-error]");
  var summary = sheet.querySelector("[data-pinpad-summary]");
  var title = sheet.querySelector("#pinpad-title");
  var passkeyButton = sheet.querySelector("[data-pinpad-passkey]");
  var current = null; // {form, input, submitter}
  var digits = "";
  var hasPasskey = null; // unknown until asked

  function b64urlToBuffer(text) {
    var padded = text.replace(/-/g, "+").replace(/_/g, "/");
    while (padded.length % 4) padded += "=";
    var raw = atob(padded);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }
  function bufferToB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  window.cwPasskeyJSON = function (credential) {
    var r = credential.response;
    var response = { clientDataJSON: bufferToB64url(r.clientDataJSON) };
    if (r.authenticatorData) response.authenticatorData = bufferToB64url(r.authenticatorData);
    if (r.signature) response.signature = bufferToB64url(r.signature);
    if (r.userHandle) response.userHandle = bufferToB64url(r.userHandle);
    if (r.attestationObject) response.attestationObject = bufferToB64url(r.attestationObject);
    if (r.getTransports) response.transports = r.getTransports();
    return {
      id: credential.id, rawId: bufferToB64url(credential.rawId), type: credential.type,
      response: response, clientExtensionResults: {}
    };
  };
  window.cwRequestOptions = function (options) {
    options.challenge = b64urlToBuffer(options.challenge);
    (options.allowCredentials || []).forEach(function (c) { c.id = b64urlToBuffer(c.id); });
    return options;
  };
  window.cwB64urlToBuffer = b64urlToBuffer;

  function show() {
    for (var i = 0; i < dots.length; i++) dots[i].classList.toggle("on", i < digits.length);
  }
  function field(input) { return input.closest(".field") || input.parentNode; }

  function open(form, input, submitter) {
    current = { form: form, input: input, submitter: submitter };
    digits = "";
    show();
    var label = input.id ? document.querySelector("label[for='" + input.id + "']") : null;
    if (label) title.textContent = label.textContent; // "payment PIN", "new PIN" …
    var shownError = field(input).querySelector(".field-error");
    errorLine.textContent = shownError ? shownError.textContent : "";
    var amount = form.querySelector("[data-amount]") || document.querySelector("[data-amount]");
    var typed = form.querySelector("input[name=amount]");
    summary.textContent = typed && typed.value ? "¥" + typed.value : (amount ? amount.textContent : "");
    passkeyButton.hidden = true;
    if (form.hasAttribute("data-passkey-intent") && window.PublicKeyCredential) {
      offerPasskey();
    }
    sheet.hidden = false;
    document.body.classList.add("pinpad-open");
    var first = sheet.querySelector("[data-digit='1']");
    if (first) first.focus();
  }
  function close() {
    sheet.hidden = true;
    document.body.classList.remove("pinpad-open");
    if (current && current.submitter) current.submitter.focus();
    current = null;
  }
  function offerPasskey() {
    if (hasPasskey !== null) { passkeyButton.hidden = !hasPasskey; return; }
    fetch("/v1/passkeys", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { items: [] }; })
      .then(function (body) {
        hasPasskey = body.items.length > 0;
        if (current) passkeyButton.hidden = !hasPasskey;
      })
      .catch(function () { hasPasskey = false; });
  }
  function submit(form, submitter) {
    delete form.dataset.sent;
    if (form.requestSubmit) form.requestSubmit(submitter || undefined);
    else form.submit();
  }
  function press(digit) {
    if (!current || digits.length >= 6) return;
    digits += digit;
    show();
    if (digits.length === 6) {
      var target = current;
      target.input.value = digits;
      var passkey = target.form.querySelector("input[name=passkey]");
      if (passkey) passkey.value = "";
      sheet.hidden = true;
      document.body.classList.remove("pinpad-open");
      current = null;
      submit(target.form, target.submitter);
    }
  }
  function usePasskey() {
    if (!current) return;
    var target = current;
    var data = new FormData(target.form);
    data.delete("pin");
    data.delete("passkey");
    passkeyButton.disabled = true;
    fetch("/app/passkeys/pay-options", { method: "POST", body: data, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("options"); return r.json(); })
      .then(function (options) {
        return navigator.credentials.get({ publicKey: window.cwRequestOptions(options) });
      })
      .then(function (credential) {
        target.form.querySelector("input[name=passkey]").value =
          JSON.stringify(window.cwPasskeyJSON(credential));
        target.input.value = "";
        sheet.hidden = true;
        document.body.classList.remove("pinpad-open");
        current = null;
        submit(target.form, target.submitter);
      })
      .catch(function () { errorLine.textContent = sheet.getAttribute("data-msg-passkey-failed"); })
      .then(function () { passkeyButton.disabled = false; });
  }

  Array.prototype.forEach.call(inputs, function (input) {
    var form = input.form;
    if (!form) return;
    field(input).classList.add("pinpad-enhanced");
    form.addEventListener("submit", function (event) {
      var passkey = form.querySelector("input[name=passkey]");
      if (/^[0-9]{6}$/.test(input.value) || (passkey && passkey.value)) return;
      event.preventDefault();
      event.stopPropagation(); // not sent yet: app.js must not mark it as sent
      open(form, input, event.submitter || null);
    });
  });
  sheet.addEventListener("click", function (event) {
    var key = event.target.closest("button");
    if (event.target === sheet) { close(); return; }
    if (!key) return;
    if (key.hasAttribute("data-digit")) press(key.getAttribute("data-digit"));
    else if (key.hasAttribute("data-pinpad-back")) { digits = digits.slice(0, -1); show(); }
    else if (key.hasAttribute("data-pinpad-close")) close();
    else if (key.hasAttribute("data-pinpad-passkey")) usePasskey();
  });
  document.addEventListener("keydown", function (event) {
    if (!current) return;
    if (/^[0-9]$/.test(event.key)) { event.preventDefault(); press(event.key); }
    else if (event.key === "Backspace") { digits = digits.slice(0, -1); show(); }
    else if (event.key === "Escape") close();
  });
  wireStepUp();

  function wireStepUp() {
    var button = document.querySelector("[data-send-step-up-code]");
    if (!button) return;
    button.addEventListener("click", function () {
      var match = document.cookie.match(/(?:^|; )cw_csrf=([^;]*)/);
      button.disabled = true;
      fetch("/v1/step-up/sms-codes", {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRF-Token": match ? decodeURIComponent(match[1]) : "" }
      }).then(function (r) {
        if (r.ok) button.textContent = button.getAttribute("data-sent");
        else button.disabled = false;
      }).catch(function () { button.disabled = false; });
    });
  }
})();
