// How answers become errors, with a stand-in `fetch` (no gateway needed): the
// answers the live gateway cannot be made to give on demand.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, Client, QcosConnectionError, QuotaExceededError, RateLimitedError } from "../dist/index.js";

/** A client whose every request gets `response`; records the requests. */
function answering(response) {
  const requests = [];
  const fetch = async (url, init) => {
    requests.push({ url: String(url), init });
    return response.clone();
  };
  return { client: new Client({ baseUrl: "http://gateway.test/", apiKey: "qcos_k", fetch }), requests };
}

const errorBody = (code, detail) => JSON.stringify({ detail, error_code: code, request_id: "req_1" });

test("429 RATE_LIMITED carries Retry-After in seconds", async () => {
  const { client } = answering(new Response(errorBody("RATE_LIMITED", "Rate limit of 10 per 1 minute exceeded"),
    { status: 429, headers: { "Retry-After": "17", "Content-Type": "application/json" } }));
  await assert.rejects(client.me(), (error) => {
    assert.ok(error instanceof RateLimitedError);
    assert.equal(error.retryAfter, 17);
    assert.equal(error.requestId, "req_1");
    return true;
  });
});

test("429 QUOTA_EXCEEDED (daily jobs) is a quota error with retryAfter", async () => {
  const { client } = answering(new Response(errorBody("QUOTA_EXCEEDED", "Daily job limit of 10 reached"),
    { status: 429, headers: { "Retry-After": "3600" } }));
  await assert.rejects(client.execute("OPENQASM 2.0;"), (error) => {
    assert.ok(error instanceof QuotaExceededError && !(error instanceof RateLimitedError));
    assert.equal(error.retryAfter, 3600);
    return true;
  });
});

test("a non-JSON error page keeps its status and text", async () => {
  const { client } = answering(new Response("<h1>Request Line is too large</h1>", { status: 414 }));
  await assert.rejects(client.status("x"), (error) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.errorCode, "HTTP_414");
    assert.match(error.detail, /too large/);
    return true;
  });
});

test("requests carry the key, JSON bodies, encoded ids and query parameters", async () => {
  const { client, requests } = answering(new Response("{}", { status: 200 }));
  await client.execute("QASM", { shots: 5 });
  await client.status("a/b?c");
  await client.results("j1", { wait: true, timeout: 7.2 });
  await client.jobs({ status: "failed", limit: 3 });
  await client.usage();
  assert.equal(requests[0].init.method, "POST");
  assert.equal(requests[0].init.headers["X-API-Key"], "qcos_k");
  assert.deepEqual(JSON.parse(requests[0].init.body), { qasm: "QASM", shots: 5 });
  assert.equal(requests[1].url, "http://gateway.test/status/a%2Fb%3Fc");
  assert.equal(requests[2].url, "http://gateway.test/results/j1?wait=true&timeout=8");
  assert.equal(requests[3].url, "http://gateway.test/jobs?status=failed&limit=3");
  assert.equal(requests[4].url, "http://gateway.test/user/usage");
});

test("a network failure is a QcosConnectionError", async () => {
  const client = new Client({ baseUrl: "http://gateway.test", fetch: async () => { throw new TypeError("fetch failed"); } });
  await assert.rejects(client.health(), QcosConnectionError);
});
