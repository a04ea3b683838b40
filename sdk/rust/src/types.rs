//! Bodies of the API, as the gateway sends them. Timestamps are ISO 8601 UTC
//! strings (`2024-01-15T10:30:00Z`); a limit of -1 means unlimited.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Measured outcomes: bitstring → occurrences, summing to the shots. Bit order
/// is Qiskit's: the rightmost character is `c[0]`; several classical registers
/// are separated by spaces, the last-declared first.
pub type Counts = BTreeMap<String, u64>;

/// A job's state. A cancelled job is `Failed` with the error `cancelled by the user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Processing,
    Completed,
    Failed,
}

impl JobState {
    /// The state as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Processing => "processing",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
        }
    }

    /// Completed or failed: the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Completed | JobState::Failed)
    }
}

/// `GET /`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Health {
    /// `healthy`, or `degraded` when a source is down (see `degraded`).
    pub status: String,
    pub version: String,
    pub queue_connected: bool,
    /// The sources that are down: `scheduler`, `accounting`, `rate_limiter`;
    /// empty when all answer (the gateway then leaves the field out).
    #[serde(default)]
    pub degraded: Vec<String>,
}

/// One circuit to submit: OpenQASM 2.0 source, shots (default 1024) and an optional custom job id.
///
/// ```
/// let circuit = qcos::Circuit::new("OPENQASM 2.0; ...").shots(1000).job_id("bell-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Circuit {
    pub qasm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shots: Option<u64>,
    /// 1–64 characters of `A-Z a-z 0-9 _ - .`, starting with a letter or digit;
    /// resubmitting the same id and body answers the same job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

impl Circuit {
    /// A circuit with the gateway's default shots (1024) and a job id it chooses.
    pub fn new(qasm: impl Into<String>) -> Self {
        Circuit { qasm: qasm.into(), shots: None, job_id: None }
    }

    /// Sets the number of shots (1 to the tier's `max_shots`).
    pub fn shots(mut self, shots: u64) -> Self {
        self.shots = Some(shots);
        self
    }

    /// Sets a custom job id.
    pub fn job_id(mut self, job_id: impl Into<String>) -> Self {
        self.job_id = Some(job_id.into());
        self
    }
}

impl From<&str> for Circuit {
    fn from(qasm: &str) -> Self {
        Circuit::new(qasm)
    }
}

/// `POST /execute` answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Submission {
    pub job_id: String,
    pub status: JobState,
    pub message: String,
    pub estimated_time_seconds: u64,
}

/// A completed job's full result, as `GET /status` gives it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobResult {
    pub counts: Counts,
    pub num_qubits: u32,
    pub shots: u64,
    /// The simulator's own time for the circuit, in seconds.
    pub execution_time_seconds: f64,
    pub backend: String,
    pub device: String,
    /// What else the simulator reported (`method`, `seed`, `wall_time_seconds`, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// `GET /status/{job_id}` and `DELETE /jobs/{job_id}` answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobStatus {
    pub job_id: String,
    pub status: JobState,
    /// Set once completed.
    pub result: Option<JobResult>,
    /// Why the job failed; `None` otherwise.
    pub error: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
}

/// The counts of a completed job in `GET /results`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResultCounts {
    pub counts: Counts,
}

/// `GET /results/{job_id}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Results {
    Completed { job_id: String, result: ResultCounts },
    Pending { job_id: String, message: String },
}

impl Results {
    /// The counts once completed; `None` while pending.
    pub fn counts(&self) -> Option<&Counts> {
        match self {
            Results::Completed { result, .. } => Some(&result.counts),
            Results::Pending { .. } => None,
        }
    }
}

/// One job of `GET /jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JobSummary {
    pub job_id: String,
    pub status: JobState,
    pub num_qubits: u32,
    pub shots: u64,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub error: Option<String>,
}

/// `GET /jobs` answer, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JobList {
    pub jobs: Vec<JobSummary>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

/// `GET /jobs` filters; `None` leaves each to the gateway (all states, limit 20, offset 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListJobs {
    pub status: Option<JobState>,
    /// 1–100.
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// `GET /user/me` answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub user_id: String,
    pub email: String,
    pub tier: String,
    pub daily_job_limit: i64,
    pub max_qubits: i64,
    pub max_shots: i64,
    pub jobs_today: u64,
    pub jobs_total: u64,
}

/// Completed jobs of one UTC day (`2024-01-15`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DailyUsage {
    pub date: String,
    pub jobs: u64,
}

/// `GET /user/usage` answer: completed jobs of one UTC month.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Usage {
    pub user_id: String,
    /// `YYYY-MM`.
    pub period: String,
    pub jobs_executed: u64,
    pub total_shots: u64,
    /// Σ num_qubits × execution hours.
    pub total_qubits_hours: f64,
    /// Newest day first; days without completed jobs are left out.
    pub daily_usage: Vec<DailyUsage>,
}

/// One tier of `GET /pricing`; a `None` price is "on request".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Tier {
    pub name: String,
    pub price_monthly: Option<i64>,
    pub daily_job_limit: i64,
    pub max_qubits: i64,
    pub max_shots: i64,
}

/// `GET /pricing` answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pricing {
    pub tiers: Vec<Tier>,
}

/// `POST /batches` answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BatchSubmission {
    pub batch_id: String,
    /// In the order of the circuits.
    pub job_ids: Vec<String>,
    pub count: u64,
    pub status: JobState,
}

/// One job of `GET /batches/{batch_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BatchJob {
    pub job_id: String,
    pub status: JobState,
    pub error: Option<String>,
    pub result: Option<ResultCounts>,
}

/// `GET /batches/{batch_id}` answer; `done` once every job is completed or failed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BatchStatus {
    pub batch_id: String,
    pub created_at: String,
    pub count: u64,
    /// Jobs per state.
    pub counts: BTreeMap<JobState, u64>,
    pub done: bool,
    pub jobs: Vec<BatchJob>,
}
