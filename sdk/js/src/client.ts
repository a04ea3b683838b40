import { ApiError, apiErrorFrom, JobFailedError, QcosConnectionError, WaitTimeoutError } from "./errors.js";
import type {
  BatchStatus,
  BatchSubmission,
  Circuit,
  Counts,
  Health,
  JobList,
  JobStatus,
  ListJobsOptions,
  Pricing,
  Results,
  Submission,
  Usage,
  User,
} from "./types.js";

/** The API reference's base URL, used when neither `baseUrl` nor `QCOS_URL` is given. */
export const DEFAULT_BASE_URL = "https://api.softquantus.com";

/** Longest single long poll; a longer wait is several (the gateway caps each at `QCOS_RESULTS_MAX_WAIT`, 300 s by default). */
const LONG_POLL_SECONDS = 120;
/** Extra time granted to an HTTP request beyond the long poll it asks the server for. */
const LONG_POLL_MARGIN_SECONDS = 30;

/** Options of {@link Client}; each has a default. */
export interface ClientOptions {
  /** Gateway URL; default `QCOS_URL` from the environment, else {@link DEFAULT_BASE_URL}. */
  baseUrl?: string;
  /** API key (`qcos_...`); default `QCOS_API_KEY` from the environment. Only `health()` and `pricing()` work without. */
  apiKey?: string;
  /** Timeout of one ordinary request in milliseconds (default 30,000). Long polls get their own. */
  timeoutMs?: number;
  /** A `fetch` implementation (default: the global one, Node ≥ 18). */
  fetch?: typeof fetch;
}

/** Options of {@link Client.waitForResult}. */
export interface WaitOptions {
  /** Seconds to wait in all (default 300); {@link WaitTimeoutError} after that. */
  timeout?: number;
}

/** Options of {@link Client.waitForBatch}. */
export interface BatchWaitOptions extends WaitOptions {
  /** Called with every batch state seen, e.g. to show progress. */
  onProgress?: (batch: BatchStatus) => void;
}

type Query = Record<string, string | number | boolean | undefined>;

interface RequestOptions {
  query?: Query;
  body?: unknown;
  timeoutMs?: number;
}

function environment(): Record<string, string | undefined> {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
}

/** Seconds of a `Retry-After` header (delta-seconds or an HTTP date), or null. */
function retryAfterSeconds(header: string | null): number | null {
  if (header === null || header.trim() === "") return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/**
 * A client of one QCOS gateway.
 *
 * ```ts
 * const client = new Client();                       // QCOS_URL, QCOS_API_KEY
 * const job = await client.execute(bell, { shots: 1000 });
 * const counts = await client.waitForResult(job.job_id, { timeout: 120 });
 * ```
 *
 * Every method returns the API's answer body, or throws an {@link ApiError}
 * subclass for an error answer and {@link QcosConnectionError} when the
 * gateway cannot be reached. Nothing is retried: a {@link RateLimitedError}
 * carries `retryAfter` (seconds) for the caller to honour.
 */
export class Client {
  readonly baseUrl: string;
  readonly #apiKey: string | undefined;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: ClientOptions = {}) {
    const env = environment();
    this.baseUrl = (options.baseUrl ?? env.QCOS_URL ?? DEFAULT_BASE_URL).replace(/\/+$/, "");
    this.#apiKey = options.apiKey ?? env.QCOS_API_KEY;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** `GET /`: gateway and scheduler health (no key needed). */
  health(): Promise<Health> {
    return this.#request("GET", "/");
  }

  /**
   * `POST /execute`: submit one OpenQASM 2.0 circuit.
   *
   * @param qasm OpenQASM 2.0 source.
   * @param options `shots` (1 to the tier's maximum; default 1024) and `jobId`
   *   (a custom id: resubmitting the same id and body returns the same job).
   * @throws CircuitInvalidError, QuotaExceededError, JobIdConflictError, ...
   */
  execute(qasm: string, options: { shots?: number; jobId?: string } = {}): Promise<Submission> {
    return this.#request("POST", "/execute", { body: { qasm, shots: options.shots, job_id: options.jobId } });
  }

  /**
   * `POST /batches`: submit several circuits at once (each counts as one job).
   *
   * @param circuits OpenQASM sources, or {@link Circuit} objects with their own shots and ids.
   */
  executeBatch(circuits: Array<string | Circuit>): Promise<BatchSubmission> {
    const body = { circuits: circuits.map((circuit) => (typeof circuit === "string" ? { qasm: circuit } : circuit)) };
    return this.#request("POST", "/batches", { body });
  }

  /** `GET /batches/{batchId}`: each job's state, and counts once completed. @throws BatchNotFoundError */
  batch(batchId: string): Promise<BatchStatus> {
    return this.#request("GET", `/batches/${encodeURIComponent(batchId)}`);
  }

  /** `GET /status/{jobId}`: state, full result once completed, error once failed. @throws JobNotFoundError */
  status(jobId: string): Promise<JobStatus> {
    return this.#request("GET", `/status/${encodeURIComponent(jobId)}`);
  }

  /**
   * `GET /results/{jobId}`, once: the counts, or the pending shape. With
   * `wait` the gateway holds the request up to `timeout` seconds (whole
   * seconds, capped by the gateway) until the job is final.
   *
   * @throws JobFailedError when the job failed, JobNotFoundError
   */
  results(jobId: string, options: { wait?: boolean; timeout?: number } = {}): Promise<Results> {
    const timeout = options.timeout === undefined ? undefined : Math.max(0, Math.ceil(options.timeout));
    const waitMs = options.wait ? (timeout ?? 30) * 1000 : 0;
    return this.#request("GET", `/results/${encodeURIComponent(jobId)}`, {
      query: { wait: options.wait ? "true" : undefined, timeout },
      timeoutMs: Math.max(this.#timeoutMs, waitMs + LONG_POLL_MARGIN_SECONDS * 1000),
    });
  }

  /**
   * The counts of a job once it completes, waiting with the gateway's long
   * poll (no client-side sleeping).
   *
   * @throws JobFailedError (with the reason) when the job fails,
   *   WaitTimeoutError after `timeout` seconds (the job goes on).
   */
  async waitForResult(jobId: string, options: WaitOptions = {}): Promise<Counts> {
    const deadline = Date.now() + (options.timeout ?? 300) * 1000;
    for (;;) {
      const remaining = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      const answer = await this.results(jobId, { wait: true, timeout: Math.min(remaining, LONG_POLL_SECONDS) });
      if (answer.status === "completed") return answer.result.counts;
      if (Date.now() >= deadline) {
        throw new WaitTimeoutError(`Job ${jobId} is not completed after ${options.timeout ?? 300} s`);
      }
    }
  }

  /**
   * Wait until every job of a batch is final; answers the batch's last
   * state (some jobs may have failed: see each job's `status` and `error`).
   * Between looks at the batch it long-polls one unfinished job's results.
   *
   * @throws WaitTimeoutError after `timeout` seconds (default 600), BatchNotFoundError
   */
  async waitForBatch(batchId: string, options: BatchWaitOptions = {}): Promise<BatchStatus> {
    const timeout = options.timeout ?? 600;
    const deadline = Date.now() + timeout * 1000;
    for (;;) {
      const batch = await this.batch(batchId);
      options.onProgress?.(batch);
      if (batch.done) return batch;
      const remaining = Math.ceil((deadline - Date.now()) / 1000);
      if (remaining <= 0) throw new WaitTimeoutError(`Batch ${batchId} is not done after ${timeout} s`);
      const pending = batch.jobs.find((job) => job.status === "queued" || job.status === "processing");
      if (pending === undefined) return batch; // every job final: `done` is only a moment behind
      try {
        await this.results(pending.job_id, { wait: true, timeout: Math.min(remaining, LONG_POLL_SECONDS) });
      } catch (error) {
        if (!(error instanceof JobFailedError)) throw error;
      }
    }
  }

  /** `DELETE /jobs/{jobId}`: cancel (idempotent); answers the job's status. @throws JobNotFoundError */
  cancel(jobId: string): Promise<JobStatus> {
    return this.#request("DELETE", `/jobs/${encodeURIComponent(jobId)}`);
  }

  /** `GET /jobs`: the caller's jobs, newest first. */
  jobs(options: ListJobsOptions = {}): Promise<JobList> {
    return this.#request("GET", "/jobs", { query: { ...options } });
  }

  /** `GET /user/me`: the caller's tier, limits and job counts. */
  me(): Promise<User> {
    return this.#request("GET", "/user/me");
  }

  /** `GET /user/usage`: completed jobs of `period` (`YYYY-MM`, UTC; default the current month). */
  usage(period?: string): Promise<Usage> {
    return this.#request("GET", "/user/usage", { query: { period } });
  }

  /** `GET /pricing`: the tiers (no key needed). */
  pricing(): Promise<Pricing> {
    return this.#request("GET", "/pricing");
  }

  async #request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(this.baseUrl + path);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.#apiKey) headers["X-API-Key"] = this.#apiKey;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        body,
        signal: AbortSignal.timeout(options.timeoutMs ?? this.#timeoutMs),
      });
      text = await response.text();
    } catch (cause) {
      throw new QcosConnectionError(`${method} ${url.pathname}: ${(cause as Error).message ?? cause}`, { cause });
    }
    let parsed: unknown = undefined;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      // Not JSON: an answer of a proxy or of gunicorn itself; reported below.
    }
    if (!response.ok) {
      const error = (parsed ?? {}) as { detail?: unknown; error_code?: unknown; request_id?: unknown };
      const init = {
        status: response.status,
        errorCode: typeof error.error_code === "string" ? error.error_code : `HTTP_${response.status}`,
        detail: typeof error.detail === "string" ? error.detail : text.slice(0, 200) || response.statusText,
        requestId: typeof error.request_id === "string" ? error.request_id : response.headers.get("X-Request-ID"),
        retryAfter: retryAfterSeconds(response.headers.get("Retry-After")),
      };
      throw apiErrorFrom(init);
    }
    if (parsed === undefined) {
      throw new ApiError({
        status: response.status,
        errorCode: "INVALID_RESPONSE",
        detail: `${method} ${url.pathname} answered ${response.status} without a JSON body`,
        requestId: response.headers.get("X-Request-ID"),
        retryAfter: null,
      });
    }
    return parsed as T;
  }
}
