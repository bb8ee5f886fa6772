// Receipt page: check the ledger inclusion proofs in the browser (own code, WebCrypto only).
// For each sealed transfer: leaf = SHA-256(0x00 ‖ canonical JSON of its sealed fields),
// the audit path folds to the block's Merkle root (RFC 9162 §2.1.3.2), the block hash is
// SHA-256 of the canonical header, and the header's Ed25519 signature verifies with the
// public key the platform publishes at /v1/ledger/public-key. See docs/ledger-proofs.md.
"use strict";

(() => {
  const FORMAT = "citywallet-inclusion-proof/1";
  const FIELDS = ["amount", "code", "credit_account_id", "debit_account_id", "flags", "id",
    "ledger", "pending_id", "reference", "timeout", "timestamp"];
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
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, publicKey, fromHex(proof.signature),
      headerBytes);
    if (!ok) throw new Error("the block signature is not valid");
  }

  async function publishedKey(url) {
    const answer = await fetch(url, { headers: { Accept: "application/json" } });
    if (!answer.ok) throw new Error("no public key");
    const body = await answer.json();
    return crypto.subtle.importKey("raw", fromHex(body.public_key), { name: "Ed25519" }, false,
      ["verify"]);
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
    for (const item of items || []) {
      const mark = document.querySelector('[data-verdict-for="' + CSS.escape(String(item.id)) + '"]');
      try {
        await verifyOne(item, key);
        if (mark) { mark.textContent = "✓"; mark.dataset.ok = "true"; }
      } catch (error) {
        all = false;
        if (mark) { mark.textContent = "✗"; mark.dataset.ok = "false"; mark.title = error.message; }
      }
    }
    result.dataset.state = all ? "ok" : "bad";
    result.textContent = (all ? "✓ " : "✗ ") + (all ? button.dataset.ok : button.dataset.bad);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("verify-proof");
    if (button) button.addEventListener("click", () => { run(button); });
  });
})();
