/**
 * Bodies of the QCOS API, as the gateway sends them (snake_case, like the
 * API reference). Timestamps are ISO 8601 UTC strings (`2024-01-15T10:30:00Z`).
 */

/** A job's state. A cancelled job is `failed` with the error `cancelled by the user`. */
export type JobState = "queued" | "processing" | "completed" | "failed";

/**
 * Measured outcomes: bitstring → occurrences, summing to the shots. Bit order
 * is Qiskit's: the rightmost character is `c[0]`; several classical registers
 * are separated by spaces, the last-declared first.
 */
export type Counts = Record<string, number>;

/** A source `GET /` can report down. */
export type DegradedSource = "scheduler" | "accounting" | "rate_limiter";

/** `GET /`. */
export interface Health {
  status: "healthy" | "degraded";
  version: string;
  queue_connected: boolean;
  /** The sources that are down; absent when all answer. */
  degraded?: DegradedSource[];
}

/** One circuit to run: OpenQASM 2.0 source, shots (default 1024) and an optional custom id. */
export interface Circuit {
  qasm: string;
  shots?: number;
  /** 1–64 characters of `A-Z a-z 0-9 _ - .`, starting with a letter or digit. */
  job_id?: string;
}

/** `POST /execute` answer. */
export interface Submission {
  job_id: string;
  status: JobState;
  message: string;
  estimated_time_seconds: number;
}

/** A completed job's full result in `GET /status`; the simulator may add fields (`method`, `seed`, ...). */
export interface JobResult {
  counts: Counts;
  num_qubits: number;
  shots: number;
  /** The simulator's own time for the circuit, in seconds. */
  execution_time_seconds: number;
  backend: string;
  device: string;
  [extra: string]: unknown;
}

/** `GET /status/{job_id}` and `DELETE /jobs/{job_id}` answer. */
export interface JobStatus {
  job_id: string;
  status: JobState;
  result: JobResult | null;
  error: string | null;
  created_at: string;
  completed_at: string | null;
}

/** `GET /results/{job_id}` answer: the counts once completed, else the pending shape. */
export type Results =
  | { job_id: string; status: "completed"; result: { counts: Counts } }
  | { job_id: string; status: "pending"; message: string };

/** One row of `GET /jobs`. */
export interface JobSummary {
  job_id: string;
  status: JobState;
  num_qubits: number;
  shots: number;
  created_at: string;
  completed_at: string | null;
  error: string | null;
}

/** `GET /jobs` answer, newest first. */
export interface JobList {
  jobs: JobSummary[];
  total: number;
  limit: number;
  offset: number;
}

/** `GET /jobs` filters: `limit` 1–100 (default 20), `offset` ≥ 0. */
export interface ListJobsOptions {
  status?: JobState;
  limit?: number;
  offset?: number;
}

/** `GET /user/me` answer. A limit of -1 means unlimited. */
export interface User {
  user_id: string;
  email: string;
  tier: string;
  daily_job_limit: number;
  max_qubits: number;
  max_shots: number;
  jobs_today: number;
  jobs_total: number;
}

/** `GET /user/usage` answer: completed jobs of one UTC month. */
export interface Usage {
  user_id: string;
  /** `YYYY-MM`. */
  period: string;
  jobs_executed: number;
  total_shots: number;
  /** Σ num_qubits × execution hours. */
  total_qubits_hours: number;
  /** Newest day first; days without completed jobs are left out. */
  daily_usage: Array<{ date: string; jobs: number }>;
}

/** One tier of `GET /pricing`; -1 means unlimited, a null price is "on request". */
export interface Tier {
  name: string;
  price_monthly: number | null;
  daily_job_limit: number;
  max_qubits: number;
  max_shots: number;
}

/** `GET /pricing` answer. */
export interface Pricing {
  tiers: Tier[];
}

/** `POST /batches` answer. */
export interface BatchSubmission {
  batch_id: string;
  job_ids: string[];
  count: number;
  status: JobState;
}

/** One job of `GET /batches/{batch_id}`. */
export interface BatchJob {
  job_id: string;
  status: JobState;
  error: string | null;
  result: { counts: Counts } | null;
}

/** `GET /batches/{batch_id}` answer; `done` once every job is completed or failed. */
export interface BatchStatus {
  batch_id: string;
  created_at: string;
  count: number;
  counts: Record<JobState, number>;
  done: boolean;
  jobs: BatchJob[];
}
