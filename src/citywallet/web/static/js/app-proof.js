// Receipt page: check the ledger inclusion proofs in the browser (own code, WebCrypto only).
// For each sealed transfer: leaf = SHA-256(0x00 ‖ canonical JSON of its sealed fields),
// the audit path folds to the block's Merkle root (RFC 9162 §2.1.3.2), the block hash is
// SHA-256 of the canonical header, and the header's Ed25519 signature verifies with the
// public key the platform publishes at /v1/ledger/public-key. The proof's "log" part places
// the same leaf in the global log: its path leads to the root of a signed checkpoint (C2SP
// tlog-checkpoint in a C2SP signed note). The newest checkpoint this browser has verified is
// kept in localStorage; a different one is accepted only with a consistency proof (RFC 9162
// §2.1.4.2) between the two, else the page shows a fork. See docs/ledger-proofs.md.
"use strict";

(() => {
  const FORMAT = "citywallet-inclusion-proof/1";
  const FIELDS = ["amount", "code", "credit_account_id", "debit_account_id", "flags", "id",
    "ledger", "pending_id", "reference", "timeout", "timestamp"];
  const STORED = "citywallet.ledger.checkpoint";
  const encoder = new TextEncoder();

  function canonical(value) {
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    if (value !== null && typeof value === "object") {
      return "{" + Object.keys(value).sort()
        .map((key) => JSON.stringify(key) + ":" + canonical(value[key])).join(",") + "}";
    }
    return JSON.stringify(value);
  }

  function fromHex(hex) {
    if (typeof hex !== "string" || hex.length % 2 !== 0 || /[^0-9a-f]/i.test(hex)) {
      throw new Error("bad hex");
    }
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i += 1) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function fromBase64(text) {
    if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
      throw new Error("bad base64");
    }
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  }

  function same(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
    return true;
  }

  function toHex(bytes) {
    return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function join(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) { out.set(part, at); at += part.length; }
    return out;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  const leafHash = (data) => sha256(join(new Uint8Array([0]), data));
  const nodeHash = (left, right) => sha256(join(new Uint8Array([1]), left, right));

  async function rootFromPath(leaf, index, size, path) {
    if (!(index >= 0 && index < size)) throw new Error("leaf index outside the tree");
    let fn = index;
    let sn = size - 1;
    let result = leaf;
    for (const sibling of path) {
      if (sn === 0) throw new Error("audit path is too long");
      if ((fn & 1) === 1 || fn === sn) {
        result = await nodeHash(sibling, result);
        while ((fn & 1) === 0 && fn !== 0) { fn >>= 1; sn >>= 1; }
      } else {
        result = await nodeHash(result, sibling);
      }
      fn >>= 1;
      sn >>= 1;
    }
    if (sn !== 0) throw new Error("audit path is too short");
    return result;
  }

  // A signed checkpoint: body lines (origin, size, base64 root, extensions), a blank line,
  // then "— <key name> <base64(4-byte key ID ‖ signature)>" lines.
  function parseCheckpoint(note) {
    if (typeof note !== "string") throw new Error("no checkpoint");
    const split = note.lastIndexOf("\n\n");
    if (split < 0 || !note.endsWith("\n")) throw new Error("not a signed note");
    const body = note.slice(0, split + 1);
    const lines = body.slice(0, -1).split("\n");
    if (lines.length < 3 || !/^(0|[1-9][0-9]*)$/.test(lines[1])) {
      throw new Error("malformed checkpoint");
    }
    const root = fromBase64(lines[2]);
    if (root.length !== 32) throw new Error("malformed checkpoint root");
    const signatures = note.slice(split + 2, -1).split("\n").map((line) => {
      if (!line.startsWith("\u2014 ")) throw new Error("malformed signature line");
      const at = line.lastIndexOf(" ");
      const raw = fromBase64(line.slice(at + 1));
      return { name: line.slice(2, at), keyId: raw.slice(0, 4), signature: raw.slice(4) };
    });
    return { origin: lines[0], size: Number(lines[1]), root, body, signatures, note };
  }

  async function verifyCheckpoint(note, key) {
    const checkpoint = parseCheckpoint(note);
    for (const line of checkpoint.signatures) {
      const id = (await sha256(join(encoder.encode(line.name), new Uint8Array([10, 1]), key.raw)))
        .slice(0, 4);
      if (!same(id, line.keyId)) continue; // another key's signature (a witness, say)
      const ok = await crypto.subtle.verify({ name: "Ed25519" }, key.crypto, line.signature,
        encoder.encode(checkpoint.body));
      if (!ok) throw new Error("the checkpoint signature is not valid");
      return checkpoint;
    }
    throw new Error("the checkpoint is not signed by the published key");
  }

  // RFC 9162 §2.1.4.2: does the tree of size `second` extend the tree of size `first`?
  async function consistent(first, second, firstRoot, secondRoot, proof) {
    if (first > second) return false;
    if (first === second) return proof.length === 0 && same(firstRoot, secondRoot);
    if (first === 0) return proof.length === 0;
    if (proof.length === 0) return false;
    const path = (first & (first - 1)) === 0 ? [firstRoot, ...proof] : proof.slice();
    let fn = first - 1;
    let sn = second - 1;
    while ((fn & 1) === 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    let fr = path[0];
    let sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0) return false;
      if ((fn & 1) === 1 || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        while ((fn & 1) === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 && same(fr, firstRoot) && same(sr, secondRoot);
  }

  function storedCheckpoint() {
    try {
      const note = localStorage.getItem(STORED);
      // Only ever stored after its signature verified; parsing is enough here.
      return note ? parseCheckpoint(note) : null;
    } catch (error) {
      return null;
    }
  }

  // Hold the new checkpoint to the one this browser saw before: "first", "ok" or "fork".
  async function holdToPast(latest, url) {
    const past = storedCheckpoint();
    if (!past) {
      localStorage.setItem(STORED, latest.note);
      return { verdict: "first", size: latest.size };
    }
    const [older, newer] = past.size <= latest.size ? [past, latest] : [latest, past];
    let proof = [];
    if (older.size !== newer.size && older.size > 0) {
      const answer = await fetch(url + "?from=" + older.size + "&to=" + newer.size,
        { headers: { Accept: "application/json" } });
      // A log now shorter than a checkpoint seen before cannot prove anything: a fork too.
      if (!answer.ok) return { verdict: "fork", size: past.size };
      proof = (await answer.json()).hashes.map(fromHex);
    }
    if (!(await consistent(older.size, newer.size, older.root, newer.root, proof))) {
      return { verdict: "fork", size: past.size };
    }
    if (latest.size > past.size) localStorage.setItem(STORED, latest.note);
    return { verdict: "ok", size: past.size };
  }

  async function verifyOne(item, publicKey) {
    const proof = item.proof;
    if (proof.format !== FORMAT) throw new Error("unknown proof format");
    const fields = {};
    for (const name of FIELDS) {
      if (!(name in item.fields)) throw new Error("missing field " + name);
      fields[name] = item.fields[name];
    }
    const leaf = await leafHash(encoder.encode(canonical(fields)));
    if (toHex(leaf) !== proof.leaf_hash) throw new Error("the transfer does not match the leaf");
    const header = proof.block;
    const root = await rootFromPath(leaf, Number(proof.leaf_index), Number(header.tree_size),
      proof.audit_path.map(fromHex));
    if (toHex(root) !== header.merkle_root) throw new Error("the path does not reach the root");
    const headerBytes = encoder.encode(canonical(header));
    if (toHex(await sha256(headerBytes)) !== proof.block_hash) throw new Error("block hash");
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, publicKey.crypto,
      fromHex(proof.signature), headerBytes);
    if (!ok) throw new Error("the block signature is not valid");
    if (!proof.log) return null;
    const checkpoint = await verifyCheckpoint(proof.log.checkpoint, publicKey);
    const logRoot = await rootFromPath(leaf, Number(proof.log.leaf_index), checkpoint.size,
      proof.log.audit_path.map(fromHex));
    if (!same(logRoot, checkpoint.root)) throw new Error("the log path does not reach the checkpoint");
    return checkpoint;
  }

  async function publishedKey(url) {
    const answer = await fetch(url, { headers: { Accept: "application/json" } });
    if (!answer.ok) throw new Error("no public key");
    const body = await answer.json();
    const raw = fromHex(body.public_key);
    const key = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
    return { crypto: key, raw };
  }

  async function showConsistency(latest, button) {
    const line = document.getElementById("consistency-result");
    if (!line || !latest) return;
    let outcome;
    try {
      outcome = await holdToPast(latest, button.dataset.consistencyUrl);
    } catch (error) {
      outcome = { verdict: "fork", size: 0 };
    }
    const text = { first: button.dataset.first, ok: button.dataset.consistent,
      fork: button.dataset.fork }[outcome.verdict] || "";
    line.dataset.state = outcome.verdict === "fork" ? "bad" : "ok";
    line.textContent = (outcome.verdict === "fork" ? "✗ " : "✓ ")
      + text.replace("{size}", String(outcome.size));
  }

  async function run(button) {
    const result = document.getElementById("verify-result");
    const data = document.getElementById("receipt-proofs");
    if (!result || !data) return;
    result.dataset.state = "busy";
    result.textContent = button.dataset.busy || "";
    let key;
    try {
      key = await publishedKey(button.dataset.keyUrl);
    } catch (error) {
      result.dataset.state = "bad";
      result.textContent = "✗ " + (button.dataset.unsupported || "") + " (" + error.message + ")";
      return;
    }
    let items;
    try {
      items = JSON.parse(data.textContent || "[]");
    } catch (error) {
      items = null;
    }
    let all = Array.isArray(items) && items.length > 0;
    let latest = null;
    for (const item of items || []) {
      const mark = document.querySelector('[data-verdict-for="' + CSS.escape(String(item.id)) + '"]');
      try {
        const checkpoint = await verifyOne(item, key);
        if (checkpoint && (!latest || checkpoint.size > latest.size)) latest = checkpoint;
        if (mark) { mark.textContent = "✓"; mark.dataset.ok = "true"; }
      } catch (error) {
        all = false;
        if (mark) { mark.textContent = "✗"; mark.dataset.ok = "false"; mark.title = error.message; }
      }
    }
    result.dataset.state = all ? "ok" : "bad";
    result.textContent = (all ? "✓ " : "✗ ") + (all ? button.dataset.ok : button.dataset.bad);
    if (all) await showConsistency(latest, button);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("verify-proof");
    if (button) button.addEventListener("click", () => { run(button); });
  });
})();
