// Runs against a real `tally serve --demo` (TALLY_URL, TALLY_KEY: the demo
// admin key; TALLY_PORTAL_KEY: a portal key allowing https://app.example),
// started by clients/typescript/client_test.go, which `make test` runs.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { Client, TallyError, newIdempotencyKey } from "../dist/index.js";

const base = process.env.TALLY_URL;
const key = process.env.TALLY_KEY;
if (!base || !key) throw new Error("TALLY_URL and TALLY_KEY are required (go test ./clients/typescript starts tally serve)");
const tally = new Client(base, key);

test("usage is charged once per idempotency key", async () => {
  const before = await tally.balance("acme-robotics");
  const d1 = await tally.usage({ customer: "acme-robotics", feature: "image.generate", quantity: 1, idempotency_key: "ts-usage-1" });
  const d2 = await tally.usage({ customer: "acme-robotics", feature: "image.generate", quantity: 1, idempotency_key: "ts-usage-1" });
  assert.equal(d1.credits_charged, 5);
  assert.equal(d2.id, d1.id);
  const after = await tally.balance("acme-robotics");
  assert.equal(Math.round((before.balance - after.balance) * 1000), 5000);
});

test("quote, batch and holds", async () => {
  const q = await tally.quote("acme-robotics", "document.analyze", 2);
  assert.equal(q.credits, 20);
  assert.equal(q.affordable, true);
  const b = await tally.usageBatch([
    { customer: "acme-robotics", feature: "chat.request", quantity: 1 },
    { customer: "acme-robotics", feature: "nope", quantity: 1 },
  ]);
  assert.equal(b.data.length, 2);
  assert.equal(b.data[0].status, 201);
  assert.equal(b.data[1].error?.type, "unknown_feature");
  const h = await tally.createHold({ customer: "acme-robotics", credits: 100 });
  assert.equal(h.status, "active");
  const c = await tally.captureHold(h.id, { feature: "chat.request", quantity: 4 });
  assert.equal(c.status, "captured");
  assert.equal(c.credits_charged, 4);
  const h2 = await tally.createHold({ customer: "acme-robotics", credits: 10 });
  assert.equal((await tally.releaseHold(h2.id)).status, "released");
});

test("a 402 carries what was needed, and topUpLink sells it", async () => {
  await fetch(base + "/api/v1/customers", {
    method: "POST",
    headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" },
    body: JSON.stringify({ external_id: "ts-broke" }),
  });
  const err = await tally.usage({ customer: "ts-broke", feature: "image.generate", quantity: 1 }).catch((e) => e);
  assert.ok(err instanceof TallyError, String(err));
  assert.equal(err.status, 402);
  assert.equal(err.type, "insufficient_credits");
  assert.equal(err.required, 5);
  assert.ok(err.suggestedPack?.id);
  assert.match(err.idempotencyKey, /^idem_/);
  const link = await tally.topUpLink(err, "ts-broke", "https://app.example/resume");
  assert.match(link.url, /\/portal\/session\/.+required=5/);
  assert.equal(link.flow, "top_up");
});

test("errors have their stable type", async () => {
  const bad = await new Client(base, "tsk_nope").balance("acme-robotics").catch((e) => e);
  assert.equal(bad.type, "unauthorized");
  assert.equal(bad.status, 401);
  const v = await tally.usage({ customer: "acme-robotics", feature: "image.generate", quantity: -1 }).catch((e) => e);
  assert.equal(v.status, 422);
});

test("embed tokens for an allowed origin only", { skip: !process.env.TALLY_PORTAL_KEY }, async () => {
  const portal = new Client(base, process.env.TALLY_PORTAL_KEY);
  const t = await portal.createEmbedToken({ customer: "acme-robotics", origin: "https://app.example" });
  assert.match(t.token, /^tet1\./);
  const e = await portal.createEmbedToken({ customer: "acme-robotics", origin: "https://evil.example" }).catch((x) => x);
  assert.equal(e.type, "origin_not_allowed");
});

test("a lost answer and a 503 are retried with the same key, charged once", async () => {
  const keys = [];
  const proxy = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    keys.push(req.headers["idempotency-key"]);
    const n = keys.length;
    if (n === 2) {
      res.writeHead(503, { "Content-Type": "application/json" });
      res.end('{"error":{"type":"unavailable","message":"Shutting down."}}');
      return;
    }
    const up = await fetch(base + req.url, { method: req.method, headers: { authorization: req.headers.authorization, "content-type": "application/json", "idempotency-key": req.headers["idempotency-key"] ?? "" }, body: chunks.length ? Buffer.concat(chunks) : undefined });
    const text = await up.text();
    if (n === 1) {
      req.socket.destroy(); // applied by the server, the answer lost
      return;
    }
    res.writeHead(up.status, { "Content-Type": "application/json" });
    res.end(text);
  });
  await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
  try {
    const before = await tally.balance("lumen-studio");
    const flaky = new Client("http://127.0.0.1:" + proxy.address().port, key, { backoffMs: 10 });
    const d = await flaky.usage({ customer: "lumen-studio", feature: "document.analyze", quantity: 1 });
    assert.equal(d.credits_charged, 10);
    assert.equal(keys.length, 3);
    assert.ok(keys[0] && keys.every((k) => k === keys[0]), JSON.stringify(keys));
    const after = await tally.balance("lumen-studio");
    assert.equal(Math.round((before.balance - after.balance) * 1000), 10000);
  } finally {
    proxy.close();
  }
});

test("generated idempotency keys grow with time and never repeat", async () => {
  let prev = newIdempotencyKey();
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 2));
    const next = newIdempotencyKey();
    assert.ok(next > prev, `key ${next} made after ${prev} sorts before it`);
    prev = next;
  }
  const seen = new Set();
  for (let i = 0; i < 10000; i++) {
    const k = newIdempotencyKey();
    assert.match(k, /^idem_[0-9a-f]{32}$/);
    assert.ok(!seen.has(k), `key ${k} made twice`);
    seen.add(k);
  }
  const ms = parseInt(prev.slice(5, 17), 16);
  assert.ok(Math.abs(Date.now() - ms) < 60000, `key ${prev} does not start with the time in milliseconds`);
});
