// The official Dapr JavaScript SDK (@dapr/dapr, HTTP protocol) against the dapr-sidecar double:
// its DaprClient publishes (single, bulk, CloudEvent, raw), saves/gets/deletes state with ETags
// and runs a transaction, and schedules/gets/deletes jobs through the SDK's HTTP client; its
// DaprServer app receives the subscriptions and a job trigger. Run by
// tests/integration/test_sidecar_sdk_js.py, which starts the sidecar and passes the ports in
// SDK_DAPR_HTTP_PORT and SDK_APP_PORT. Prints "ok - NAME" or "not ok - NAME: why" per check,
// then "N checks, M failed"; exits 1 when a check failed.
"use strict";

const assert = require("node:assert/strict");
const {
  CommunicationProtocolEnum,
  DaprPubSubStatusEnum,
  DaprServer,
  LogLevel,
  StateConcurrencyEnum,
} = require("@dapr/dapr");

function setting(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

const SIDECAR_PORT = setting("SDK_DAPR_HTTP_PORT");
const APP_PORT = setting("SDK_APP_PORT");
const APP_TOKEN = setting("APP_API_TOKEN"); // what the sidecar must send to this app
const WAIT_MS = Number(process.env.SDK_WAIT_MS || 60000);
const PUBSUB = "pubsub";
const STORE = "statestore";
const VALUE_TYPE = "type.googleapis.com/google.protobuf.Value";
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let checks = 0;
let failed = 0;

async function check(name, fn) {
  checks++;
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

async function waitFor(predicate, what, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await predicate();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// The SDK reports a failed call as an Error whose message is JSON {error, error_msg, status};
// error_msg is the sidecar's body.
function sidecarError(e) {
  assert.ok(e, "an error was expected");
  const outer = JSON.parse(e.message);
  let body = null;
  try {
    body = JSON.parse(outer.error_msg);
  } catch (_e) {
    body = outer.error_msg;
  }
  return { status: outer.status, body };
}

async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error("the call succeeded but should have failed");
}

// ---- the app: what the sidecar delivers --------------------------------------------------------

const received = {}; // route label -> [{data, headers}]
function recorder(label, answer = () => DaprPubSubStatusEnum.SUCCESS) {
  received[label] = [];
  return async (data, headers) => {
    received[label].push({ data, headers });
    return answer(received[label].length);
  };
}
const triggers = []; // {name, body, headers, at}

async function main() {
  const logger = { level: LogLevel.Error };
  const server = new DaprServer({
    serverHost: "127.0.0.1",
    serverPort: APP_PORT,
    communicationProtocol: CommunicationProtocolEnum.HTTP,
    logger,
    clientOptions: {
      daprHost: "127.0.0.1",
      daprPort: SIDECAR_PORT,
      communicationProtocol: CommunicationProtocolEnum.HTTP,
      daprApiToken: setting("DAPR_API_TOKEN"),
      logger,
    },
  });

  await server.pubsub.subscribe(PUBSUB, "sdk-orders", recorder("orders"));
  await server.pubsub.subscribe(
    PUBSUB,
    "sdk-retry",
    recorder("retry", (n) => (n === 1 ? DaprPubSubStatusEnum.RETRY : DaprPubSubStatusEnum.SUCCESS)),
  );
  await server.pubsub.subscribeWithOptions(PUBSUB, "sdk-drop", {
    deadLetterTopic: "sdk-dlq",
    callback: recorder("drop", () => DaprPubSubStatusEnum.DROP),
  });
  await server.pubsub.subscribe(PUBSUB, "sdk-dlq", recorder("dlq"));
  await server.pubsub.subscribe(PUBSUB, "sdk-raw", recorder("raw"), "", { rawPayload: true });
  // routes.rules with the event.type form the double supports, and routes.default
  await server.pubsub.subscribeWithOptions(PUBSUB, "sdk-routed", {
    route: { rules: [{ match: 'event.type == "sdk.special"', path: "special" }], default: "plain" },
  });
  server.pubsub.subscribeToRoute(PUBSUB, "sdk-routed", "special", recorder("special"));
  server.pubsub.subscribeToRoute(PUBSUB, "sdk-routed", "plain", recorder("plain"));
  // A job callback, registered on the DaprServer's own HTTP server as the SDK's jobs.listen does.
  server.daprServer.getServer().post("/job/:name", (req, res) => {
    triggers.push({ name: req.params.name, body: req.body, headers: req.headers, at: Date.now() });
    res.status(200).send();
  });

  await server.start(); // listens, then waits until the sidecar answers /v1.0/metadata
  const client = server.client;
  const http = client.daprClient; // the SDK's HTTP client (its transport, token, serialisation)

  await check("sidecar healthy once the app serves /dapr/subscribe", async () => {
    await waitFor(async () => {
      try {
        await http.execute("/healthz", { method: "GET" });
        return true;
      } catch (_e) {
        return false;
      }
    }, "/v1.0/healthz 204");
  });

  await check("metadata lists the SDK's programmatic subscriptions", async () => {
    const md = await client.metadata.get();
    assert.equal(md.id, setting("SDK_APP_ID"));
    const topics = md.subscriptions.map((s) => s.topic).sort();
    assert.deepEqual(topics, ["sdk-dlq", "sdk-drop", "sdk-orders", "sdk-raw", "sdk-retry", "sdk-routed"]);
    const routed = md.subscriptions.find((s) => s.topic === "sdk-routed");
    assert.deepEqual(routed.rules, [
      { match: 'event.type == "sdk.special"', path: "/pubsub--sdk-routed--special" },
      { path: "/pubsub--sdk-routed--plain" },
    ]);
    assert.equal(routed.type, "PROGRAMMATIC");
    assert.equal(await client.metadata.set("sdkCheck", "set by the SDK"), true);
    assert.equal((await client.metadata.get()).extended.sdkCheck, "set by the SDK");
  });

  // ---- publish and subscribe -------------------------------------------------------------------

  await check("publish JSON: the app gets the data with Dapr's headers", async () => {
    const r = await client.pubsub.publish(PUBSUB, "sdk-orders", { order: 1, items: ["a", "b"] });
    assert.deepEqual(r, {});
    const [got] = await waitFor(() => received.orders.length >= 1 && received.orders, "the order");
    assert.deepEqual(got.data, { order: 1, items: ["a", "b"] });
    assert.equal(got.headers["content-type"], "application/cloudevents+json");
    assert.equal(got.headers.pubsubname, PUBSUB);
    assert.equal(got.headers["dapr-api-token"], APP_TOKEN);
    assert.equal(got.headers.__topic, "sdk-orders");
  });

  await check("publish text and with metadata", async () => {
    const r = await client.pubsub.publish(PUBSUB, "sdk-orders", "plain words", {
      metadata: { partitionKey: "pk-1", custom: "v 1" },
    });
    assert.deepEqual(r, {});
    const got = await waitFor(() => received.orders.find((x) => x.data === "plain words"), "the text");
    assert.equal(got.headers.__key, "pk-1");
    assert.equal(got.headers.custom, "v 1");
  });

  await check("publishBulk (v1.0-alpha1)", async () => {
    const r = await client.pubsub.publishBulk(PUBSUB, "sdk-orders", [{ bulk: 1 }, "bulk two"]);
    assert.deepEqual(r.failedMessages, []);
    await waitFor(() => received.orders.length >= 4, "the two bulk entries");
    const datas = received.orders.map((x) => JSON.stringify(x.data)).sort();
    assert.deepEqual(datas, ['"bulk two"', '"plain words"', '{"bulk":1}', '{"items":["a","b"],"order":1}'].sort());
  });

  await check("a CloudEvent of the app keeps its id and type; rules route by event.type", async () => {
    const ce = {
      specversion: "1.0",
      id: "sdk-ce-1",
      source: "sdk-check",
      type: "sdk.special",
      datacontenttype: "application/json",
      data: { kind: "special" },
    };
    assert.deepEqual(await client.pubsub.publish(PUBSUB, "sdk-routed", ce), {});
    assert.deepEqual(await client.pubsub.publish(PUBSUB, "sdk-routed", { kind: "plain" }), {});
    const [special] = await waitFor(() => received.special.length >= 1 && received.special, "the rule's route");
    const [plain] = await waitFor(() => received.plain.length >= 1 && received.plain, "the default route");
    assert.deepEqual(special.data, { kind: "special" });
    assert.deepEqual(plain.data, { kind: "plain" });
  });

  await check("RETRY from the app is retried by the resiliency policy, then SUCCESS", async () => {
    assert.deepEqual(await client.pubsub.publish(PUBSUB, "sdk-retry", { attempt: "me" }), {});
    const got = await waitFor(() => received.retry.length >= 2 && received.retry, "the retry");
    assert.deepEqual(got[0].data, { attempt: "me" });
    assert.deepEqual(got[1].data, { attempt: "me" });
  });

  await check("DROP from the app sends the message to its dead-letter topic", async () => {
    assert.deepEqual(await client.pubsub.publish(PUBSUB, "sdk-drop", { dropme: true }), {});
    const [dl] = await waitFor(() => received.dlq.length >= 1 && received.dlq, "the dead letter");
    assert.deepEqual(dl.data, { dropme: true });
    // republished with the original message's metadata, whose record headers win (§3.3, §3.6)
    assert.equal(dl.headers.__topic, "sdk-drop");
    assert.equal(received.drop.length, 1);
  });

  await check("rawPayload publish and subscription", async () => {
    const r = await client.pubsub.publish(PUBSUB, "sdk-raw", { raw: [1, 2] }, { metadata: { rawPayload: "true" } });
    assert.deepEqual(r, {});
    const [got] = await waitFor(() => received.raw.length >= 1 && received.raw, "the raw message");
    assert.deepEqual(got.data, { raw: [1, 2] }); // the SDK decoded data_base64
  });

  await check("publish to an unknown pubsub: 404 ERR_PUBSUB_NOT_FOUND", async () => {
    const r = await client.pubsub.publish("nosuch", "t", { x: 1 });
    const e = sidecarError(r.error);
    assert.equal(e.status, 404);
    assert.equal(e.body.errorCode, "ERR_PUBSUB_NOT_FOUND");
  });

  // ---- state --------------------------------------------------------------------------------------

  const first = { hello: "world", n: 1 };
  let etag = null;
  await check("state save, get and bulk get with an ETag", async () => {
    assert.deepEqual(await client.state.save(STORE, [{ key: "sdk-a", value: first }]), {});
    assert.deepEqual(await client.state.get(STORE, "sdk-a"), first);
    const items = await client.state.getBulk(STORE, ["sdk-a", "sdk-missing"]);
    const a = items.find((i) => i.key === "sdk-a");
    const missing = items.find((i) => i.key === "sdk-missing");
    assert.deepEqual(a.data, first);
    assert.match(a.etag, UUID_RE);
    assert.deepEqual(missing, { key: "sdk-missing" });
    etag = a.etag;
  });

  await check("state save with a wrong ETag: 409 ERR_STATE_SAVE", async () => {
    const r = await client.state.save(STORE, [
      { key: "sdk-a", value: { v: 2 }, etag: "00000000-0000-4000-8000-000000000000" },
    ]);
    const e = sidecarError(r.error);
    assert.equal(e.status, 409);
    assert.equal(e.body.errorCode, "ERR_STATE_SAVE");
    assert.deepEqual(await client.state.get(STORE, "sdk-a"), first);
  });

  let etag2 = null;
  await check("state save with the right ETag (first-write) changes the ETag", async () => {
    const r = await client.state.save(STORE, [
      { key: "sdk-a", value: { v: 2 }, etag, options: { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE } },
    ]);
    assert.deepEqual(r, {});
    const [a] = await client.state.getBulk(STORE, ["sdk-a"]);
    assert.deepEqual(a.data, { v: 2 });
    assert.match(a.etag, UUID_RE);
    assert.notEqual(a.etag, etag);
    etag2 = a.etag;
  });

  await check("state delete with a stale ETag: 409 ERR_STATE_DELETE", async () => {
    const r = await client.state.delete(STORE, "sdk-a", { etag });
    const e = sidecarError(r.error);
    assert.equal(e.status, 409);
    assert.equal(e.body.errorCode, "ERR_STATE_DELETE");
    assert.deepEqual(await client.state.get(STORE, "sdk-a"), { v: 2 });
  });

  await check("state delete with the current ETag; a missing key reads as empty (204)", async () => {
    assert.deepEqual(await client.state.delete(STORE, "sdk-a", { etag: etag2 }), {});
    assert.equal(await client.state.get(STORE, "sdk-a"), "");
  });

  await check("state transaction and TTL metadata", async () => {
    await client.state.transaction(STORE, [
      { operation: "upsert", request: { key: "sdk-t1", value: "one" } },
      { operation: "upsert", request: { key: "sdk-kept", value: { kept: true } } },
      { operation: "upsert", request: { key: "sdk-gone", value: 0 } },
    ]);
    await client.state.transaction(STORE, [{ operation: "delete", request: { key: "sdk-gone" } }]);
    assert.equal(await client.state.get(STORE, "sdk-t1"), "one");
    assert.deepEqual(await client.state.get(STORE, "sdk-kept"), { kept: true });
    assert.equal(await client.state.get(STORE, "sdk-gone"), "");
    const r = await client.state.save(STORE, [{ key: "sdk-ttl", value: 1, metadata: { ttlInSeconds: "3600" } }]);
    assert.deepEqual(r, {});
  });

  await check("state store unknown: 400 ERR_STATE_STORE_NOT_FOUND", async () => {
    const e = sidecarError(await rejection(client.state.get("nosuch", "k")));
    assert.equal(e.status, 400);
    assert.equal(e.body.errorCode, "ERR_STATE_STORE_NOT_FOUND");
  });

  // ---- jobs: requests as the SDK's HTTP jobs client writes them (nulls for unset fields) -------

  const once = { job: "once", n: 1 };
  const scheduledAt = Date.now();
  await check("schedule a one-shot job on /v1.0-alpha1/jobs and get it on /v1.0/jobs", async () => {
    const r = await http.executeWithApiVersion("v1.0-alpha1", "/jobs/sdk-once", {
      method: "POST",
      body: { data: once, schedule: null, dueTime: "2s", repeats: null, ttl: null },
      headers: { "content-type": "application/json" },
    });
    assert.equal(r, "");
    const job = await http.executeWithApiVersion("v1.0", "/jobs/sdk-once", { method: "GET" });
    assert.equal(job.name, "sdk-once");
    assert.equal(job.dueTime, "2s");
    assert.deepEqual(job.data, { "@type": VALUE_TYPE, value: once });
    assert.equal(job.schedule, undefined);
  });

  await check("the DaprServer app receives the job trigger; the one-shot job is then gone", async () => {
    const t = await waitFor(() => triggers.find((x) => x.name === "sdk-once"), "the job trigger");
    assert.deepEqual(t.body, once);
    assert.equal(t.headers["content-type"], "application/json");
    assert.equal(t.headers["dapr-api-token"], APP_TOKEN);
    assert.ok(t.at >= scheduledAt + 1000, `triggered ${t.at - scheduledAt} ms after scheduling`);
    await waitFor(async () => {
      try {
        await http.executeWithApiVersion("v1.0", "/jobs/sdk-once", { method: "GET" });
        return false;
      } catch (e) {
        const err = sidecarError(e);
        return err.status === 500 && err.body.errorCode === "DAPR_SCHEDULER_GET_JOB";
      }
    }, "the delivered one-shot job to be deleted");
  });

  await check("schedule a repeating job, 409 without overwrite, get, delete", async () => {
    const body = { data: "tick", schedule: "@every 1h", dueTime: null, repeats: 5, ttl: null };
    const post = (b) =>
      http.executeWithApiVersion("v1.0", "/jobs/sdk-every", {
        method: "POST",
        body: b,
        headers: { "content-type": "application/json" },
      });
    assert.equal(await post(body), "");
    const e = sidecarError(await rejection(post(body)));
    assert.equal(e.status, 409);
    assert.equal(e.body.errorCode, "DAPR_SCHEDULER_SCHEDULE_JOB");
    assert.equal(await post({ ...body, repeats: 6, overwrite: true }), "");
    const job = await http.executeWithApiVersion("v1.0", "/jobs/sdk-every", { method: "GET" });
    assert.deepEqual(job, {
      name: "sdk-every",
      schedule: "@every 1h",
      repeats: 6,
      data: { "@type": VALUE_TYPE, value: "tick" },
      failurePolicy: { constant: { interval: "1s", maxRetries: 3 } },
    });
    assert.equal(await http.executeWithApiVersion("v1.0", "/jobs/sdk-every", { method: "DELETE" }), "");
    const gone = sidecarError(await rejection(http.executeWithApiVersion("v1.0", "/jobs/sdk-every", { method: "GET" })));
    assert.equal(gone.status, 500);
    assert.equal(gone.body.errorCode, "DAPR_SCHEDULER_GET_JOB");
  });

  // ---- nothing was delivered twice ------------------------------------------------------------------

  await check("every message and trigger arrived exactly as often as it should", async () => {
    const counts = Object.fromEntries(Object.entries(received).map(([k, v]) => [k, v.length]));
    assert.deepEqual(counts, { orders: 4, retry: 2, drop: 1, dlq: 1, raw: 1, special: 1, plain: 1 });
    assert.equal(triggers.length, 1);
  });

  await server.stop();
  await client.stop();
}

main()
  .catch((e) => {
    failed++;
    console.log(`not ok - fatal: ${e && e.stack ? e.stack : e}`);
  })
  .finally(() => {
    console.log(`${checks} checks, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  });
