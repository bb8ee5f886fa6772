// CityWallet service worker (own code). Caches the static shell and an offline page;
// pages are always fetched from the network and never stored: they show money.
"use strict";

const SHELL = "citywallet-shell-v1";
const OFFLINE = "/app/offline";
const ASSETS = [
  OFFLINE,
  "/static/css/site.css",
  "/static/css/app.css",
  "/static/js/app.js",
  "/app/icons/192.png",
  "/app/icons/512.png",
  "/app/manifest.webmanifest",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(SHELL).then((cache) => cache.addAll(ASSETS)).then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n !== SHELL).map((n) => caches.delete(n))))
      .then(() => self.clients.claim())
  );
});

function isShellAsset(url) {
  return url.origin === self.location.origin && ASSETS.includes(url.pathname);
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (request.mode === "navigate") {
    // network only; when it fails, the offline page (never a stored page with money)
    event.respondWith(fetch(request).catch(() => caches.match(OFFLINE)));
    return;
  }
  if (isShellAsset(url)) {
    // the shell: from the network when it answers (and refresh the copy), else the copy
    event.respondWith(
      fetch(request)
        .then((response) => {
          if (response.ok) {
            const copy = response.clone();
            caches.open(SHELL).then((cache) => cache.put(request, copy));
          }
          return response;
        })
        .catch(() => caches.match(request))
    );
  }
});
