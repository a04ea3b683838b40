// The client against a live gateway: QCOS_URL and QCOS_API_KEY (`make sdk-test` sets both).
// Without them the tests skip, except under CI=true, where they fail.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";

import {
  ApiError,
  AuthenticationError,
  BatchNotFoundError,
  CircuitInvalidError,
  Client,
  InvalidRequestError,
  JobFailedError,
  JobIdConflictError,
  JobNotFoundError,
  NotFoundError,
  QuotaExceededError,
  WaitTimeoutError,
} from "../dist/index.js";

const BELL = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;';
const GHZ3 = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[3]; creg c[3]; h q[0]; cx q[0],q[1]; cx q[1],q[2]; measure q -> c;';
// Runs for many seconds (a state vector of 20 qubits, 41,000 gates, not Clifford); the tests cancel it long before.
// A mid-circuit measurement makes Aer simulate every shot on its own: 10 shots
// of 41,000 gates on 20 qubits take many seconds even on a quiet machine.
const SLOW = `OPENQASM 2.0; include "qelib1.inc"; qreg q[20]; creg c[20]; ${"h q; t q; cx q[0],q[19]; ".repeat(1000)}measure q[0] -> c[0]; h q[0]; measure q -> c;`;

const { QCOS_URL, QCOS_API_KEY, CI } = process.env;
const configured = Boolean(QCOS_URL && QCOS_API_KEY);
if (!configured && /^(1|true|yes)$/i.test(CI ?? "")) {
  throw new Error("QCOS_URL and QCOS_API_KEY must name a live gateway (CI=true: real components are required)");
}
const skip = configured ? false : "no live gateway: set QCOS_URL and QCOS_API_KEY (make sdk-test does)";

const client = new Client();
const unique = (prefix) => `${prefix}-${randomUUID().slice(0, 12)}`;
const total = (counts) => Object.values(counts).reduce((sum, n) => sum + n, 0);

/** Run a batch call; a gateway without the batch endpoint fails the test with a message that says so. */
async function batchCall(call) {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ApiError && error.errorCode === "NOT_FOUND") {
      assert.fail(`the gateway at ${client.baseUrl} has no /batches endpoint (404 NOT_FOUND): ${error.message}`);
    }
    throw error;
  }
}

describe("live gateway", { skip }, () => {
  test("health answers without a key", async () => {
    const health = await new Client({ apiKey: "" }).health();
    assert.ok(["healthy", "degraded"].includes(health.status));
    assert.equal(typeof health.version, "string");
    assert.equal(health.queue_connected, true);
  });

  test("pricing lists the tiers without a key", async () => {
    const { tiers } = await new Client({ apiKey: "" }).pricing();
    assert.deepEqual(tiers.map((tier) => tier.name), ["free", "pro", "enterprise"]);
    assert.equal(tiers[0].price_monthly, 0);
  });

  test("me describes the key's user", async () => {
    const me = await client.me();
    assert.equal(me.tier, "enterprise");
    assert.match(me.email, /@/);
    assert.ok(me.max_qubits > 0 && me.jobs_total >= me.jobs_today);
  });

  test("a Bell circuit runs: submit, pending, wait for counts, status", async () => {
    const submitted = await client.execute(BELL, { shots: 1000 });
    assert.equal(submitted.status, "queued");
    assert.equal(typeof submitted.estimated_time_seconds, "number");
    // The local executor needs seconds to start the simulator: the job is not done yet.
    const early = await client.results(submitted.job_id);
    assert.deepEqual(early, { job_id: submitted.job_id, status: "pending", message: "Job not yet completed" });

    const counts = await client.waitForResult(submitted.job_id, { timeout: 180 });
    assert.equal(total(counts), 1000);
    assert.deepEqual(Object.keys(counts).filter((key) => !["00", "11"].includes(key)), []);

    const status = await client.status(submitted.job_id);
    assert.equal(status.status, "completed");
    assert.equal(status.result.shots, 1000);
    assert.equal(status.result.num_qubits, 2);
    assert.deepEqual(status.result.counts, counts);
    assert.equal(status.error, null);
  });

  test("waiting ends with WaitTimeoutError after its timeout; the job goes on", async () => {
    const { job_id: jobId } = await client.execute(SLOW, { shots: 10 });
    try {
      const started = Date.now();
      await assert.rejects(client.waitForResult(jobId, { timeout: 2 }), WaitTimeoutError);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 2000 && elapsed < 4000, `waited ${elapsed} ms`);
      assert.notEqual((await client.status(jobId)).status, "failed");
    } finally {
      await client.cancel(jobId);
    }
  });

  test("a custom job id is idempotent with the same body and a conflict with another", async () => {
    const jobId = unique("js-idem");
    const first = await client.execute(BELL, { shots: 64, jobId });
    const again = await client.execute(BELL, { shots: 64, jobId });
    assert.equal(first.job_id, jobId);
    assert.equal(again.job_id, jobId);
    await assert.rejects(client.execute(BELL, { shots: 65, jobId }), (error) => {
      assert.ok(error instanceof JobIdConflictError);
      assert.equal(error.status, 409);
      assert.equal(error.errorCode, "JOB_ID_CONFLICT");
      assert.match(error.requestId, /^req_/);
      return true;
    });
  });

  test("an invalid circuit names its line and column", async () => {
    const qasm = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\nfoo q[0];\n';
    await assert.rejects(client.execute(qasm), (error) => {
      assert.ok(error instanceof CircuitInvalidError, String(error));
      assert.equal(error.status, 400);
      assert.equal(error.line, 4);
      assert.equal(error.column, 1);
      assert.match(error.detail, /foo/);
      return true;
    });
  });

  test("bad shots are an invalid request, too many a quota error", async () => {
    await assert.rejects(client.execute(BELL, { shots: 0 }), InvalidRequestError);
    const { max_shots: maxShots } = await client.me();
    await assert.rejects(client.execute(BELL, { shots: maxShots + 1 }), (error) => {
      assert.ok(error instanceof QuotaExceededError, String(error));
      assert.equal(error.status, 403);
      assert.equal(error.retryAfter, null);
      return true;
    });
  });

  test("keys: none is AUTH_REQUIRED, a wrong one AUTH_INVALID", async () => {
    await assert.rejects(new Client({ apiKey: "" }).me(), (error) => {
      assert.ok(error instanceof AuthenticationError);
      assert.equal(error.errorCode, "AUTH_REQUIRED");
      return true;
    });
    await assert.rejects(new Client({ apiKey: "qcos_not-a-key" }).me(), (error) => {
      assert.ok(error instanceof AuthenticationError);
      assert.equal(error.errorCode, "AUTH_INVALID");
      assert.equal(error.status, 401);
      return true;
    });
  });

  test("an unknown job is JOB_NOT_FOUND everywhere", async () => {
    const jobId = unique("js-missing");
    for (const call of [() => client.status(jobId), () => client.results(jobId), () => client.cancel(jobId)]) {
      await assert.rejects(call(), (error) => error instanceof JobNotFoundError && error.status === 404);
    }
  });

  test("a cancelled job fails, and waiting for it raises JobFailedError with the reason", async () => {
    const { job_id: jobId } = await client.execute(SLOW, { shots: 10 });
    const cancelled = await client.cancel(jobId);
    assert.equal(cancelled.status, "failed");
    assert.equal(cancelled.error, "cancelled by the user");
    assert.deepEqual(await client.cancel(jobId), cancelled);
    await assert.rejects(client.waitForResult(jobId, { timeout: 30 }), (error) => {
      assert.ok(error instanceof JobFailedError);
      assert.match(error.reason, /cancelled by the user/);
      return true;
    });
  });

  test("jobs lists the caller's jobs newest first, filtered by status", async () => {
    const { job_id: cancelled } = await client.execute(SLOW, { shots: 10 });
    await client.cancel(cancelled);
    const { job_id: newest } = await client.execute(BELL, { shots: 10, jobId: unique("js-list") });
    const page = await client.jobs({ limit: 2 });
    assert.equal(page.limit, 2);
    assert.equal(page.jobs[0].job_id, newest);
    assert.ok(page.total >= 2 && page.jobs.length === 2);
    const failed = await client.jobs({ status: "failed", limit: 100 });
    assert.ok(failed.jobs.some((job) => job.job_id === cancelled));
    assert.ok(failed.jobs.every((job) => job.status === "failed"));
    await assert.rejects(client.jobs({ limit: 101 }), InvalidRequestError);
  });

  test("usage counts completed jobs of a month", async () => {
    const { job_id: jobId } = await client.execute(BELL, { shots: 10 });
    await client.waitForResult(jobId, { timeout: 180 });
    const now = await client.usage();
    assert.match(now.period, /^\d{4}-\d{2}$/);
    assert.ok(now.jobs_executed >= 1 && now.total_shots >= 10, JSON.stringify(now));
    assert.ok(now.daily_usage[0].jobs >= 1);
    const old = await client.usage("2024-01");
    assert.deepEqual([old.period, old.jobs_executed, old.daily_usage], ["2024-01", 0, []]);
    await assert.rejects(client.usage("2024-13"), InvalidRequestError);
  });

  test("a batch runs every circuit and reports progress", async () => {
    const customId = unique("js-batch");
    const submitted = await batchCall(() => client.executeBatch([BELL, { qasm: GHZ3, shots: 300, job_id: customId }]));
    assert.match(submitted.batch_id, /^batch_[0-9a-f]+$/);
    assert.equal(submitted.count, 2);
    assert.equal(submitted.job_ids.length, 2);
    assert.equal(submitted.job_ids[1], customId);

    const seen = [];
    const batch = await client.waitForBatch(submitted.batch_id, { timeout: 300, onProgress: (b) => seen.push(b) });
    assert.ok(seen.length >= 1 && seen.at(-1) === batch);
    assert.equal(batch.done, true);
    assert.deepEqual(batch.counts, { queued: 0, processing: 0, completed: 2, failed: 0 });
    const byId = Object.fromEntries(batch.jobs.map((job) => [job.job_id, job]));
    assert.equal(total(byId[submitted.job_ids[0]].result.counts), 1024);
    assert.deepEqual(Object.keys(byId[customId].result.counts).sort(), ["000", "111"]);
    // Each job of a batch is a job like any other.
    assert.equal((await client.status(customId)).status, "completed");
  });

  test("an unknown batch is BATCH_NOT_FOUND", async () => {
    await batchCall(async () => {
      await assert.rejects(client.batch("batch_0123456789abcdef"), (error) => {
        if (error instanceof ApiError && error.errorCode === "NOT_FOUND") throw error;
        assert.ok(error instanceof BatchNotFoundError, String(error));
        assert.ok(error instanceof NotFoundError);
        return true;
      });
    });
  });

  test("a failed request to another host is a connection error, not an API error", async () => {
    const nowhere = new Client({ baseUrl: "http://127.0.0.1:9", timeoutMs: 2000 });
    await assert.rejects(nowhere.health(), (error) => error.name === "QcosConnectionError");
  });
});
