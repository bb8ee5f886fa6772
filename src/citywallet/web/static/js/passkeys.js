// Passkeys in the browser (WebAuthn): sign in on /login, and add this device's passkey in
// settings (/app/me/passkeys). The server's options come from the API; bytes travel as
// base64url both ways. Own code, no dependencies; needs window.PublicKeyCredential.
(function () {
  "use strict";
  if (!window.PublicKeyCredential) return;

  function toBuffer(text) {
    var padded = text.replace(/-/g, "+").replace(/_/g, "/");
    while (padded.length % 4) padded += "=";
    var raw = atob(padded);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }
  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function asJSON(credential) {
    var r = credential.response;
    var response = { clientDataJSON: toText(r.clientDataJSON) };
    ["authenticatorData", "signature", "userHandle", "attestationObject"].forEach(function (k) {
      if (r[k]) response[k] = toText(r[k]);
    });
    if (r.getTransports) response.transports = r.getTransports();
    return { id: credential.id, rawId: toText(credential.rawId), type: credential.type,
             response: response, clientExtensionResults: {} };
  }
  function csrf() {
    var match = document.cookie.match(/(?:^|; )cw_csrf=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      if (!r.ok) throw new Error(String(r.status));
      return r.status === 204 ? null : r.json();
    });
  }
  function fail(box, message) {
    var line = box.querySelector("[data-passkey-error]");
    line.textContent = message;
    line.hidden = false;
  }

  var login = document.querySelector("[data-passkey-login]");
  if (login) {
    login.hidden = false;
    login.querySelector("[data-passkey-login-button]").addEventListener("click", function () {
      post("/v1/auth/passkey/options")
        .then(function (options) {
          options.challenge = toBuffer(options.challenge);
          (options.allowCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
          return navigator.credentials.get({ publicKey: options });
        })
        .then(function (credential) {
          return post("/v1/auth/passkey", { credential: asJSON(credential), session: "cookie" });
        })
        .then(function () { window.location.assign(login.getAttribute("data-next") || "/app"); })
        .catch(function () { fail(login, login.getAttribute("data-failed")); });
    });
  }

  var add = document.querySelector("form[data-passkey-add]");
  if (add) {
    add.hidden = false;
    var unsupported = document.querySelector("[data-passkey-unsupported]");
    if (unsupported) unsupported.hidden = true;
    add.addEventListener("submit", function (event) {
      event.preventDefault();
      var name = add.querySelector("[name=name]").value;
      var pin = add.querySelector("[name=pin]").value;
      post("/v1/passkeys/registration-options")
        .then(function (options) {
          options.challenge = toBuffer(options.challenge);
          options.user.id = toBuffer(options.user.id);
          (options.excludeCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
          return navigator.credentials.create({ publicKey: options });
        })
        .then(function (credential) {
          return post("/v1/passkeys", { credential: asJSON(credential), name: name, pin: pin });
        })
        .then(function () { window.location.assign("/app/me/passkeys"); })
        .catch(function () { fail(add, add.getAttribute("data-failed")); });
    });
  }
})();
