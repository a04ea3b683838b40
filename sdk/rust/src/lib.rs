//! `qcos`: a client of the QCOS REST API, which runs OpenQASM 2.0 circuits as
//! batch jobs on HPC clusters. Blocking, on [`ureq`].
//!
//! ```no_run
//! use std::time::Duration;
//! use qcos::{Circuit, Client};
//!
//! # fn main() -> qcos::Result<()> {
//! let client = Client::from_env(); // QCOS_URL and QCOS_API_KEY
//! let bell = r#"OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2];
//!               h q[0]; cx q[0],q[1]; measure q -> c;"#;
//! let job = client.execute(&Circuit::new(bell).shots(1000))?;
//! let counts = client.wait_for_result(&job.job_id, Duration::from_secs(120))?;
//! println!("{counts:?}");
//! # Ok(())
//! # }
//! ```
//!
//! Every method answers the API's body or an [`Error`]: [`Error::Api`] with
//! the API's [`ErrorCode`] for an error answer (match on it), or
//! [`Error::Transport`] when the gateway cannot be reached. Nothing is
//! retried: a 429 carries [`ApiError::retry_after`] for the caller to honour.

mod error;
mod types;

use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::{ApiError, Error, ErrorCode, Result};
pub use types::*;

/// The API reference's base URL, used when neither the constructor nor `QCOS_URL` gives one.
pub const DEFAULT_BASE_URL: &str = "https://api.softquantus.com";

/// Longest single server-side wait; a longer one is several (the gateway caps
/// each at `QCOS_RESULTS_MAX_WAIT`, 300 s by default).
const LONG_POLL: Duration = Duration::from_secs(120);
/// Bound of an ordinary request; a long poll gets its wait on top.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one QCOS gateway; cheap to clone, usable from several threads.
#[derive(Debug, Clone)]
pub struct Client {
    base_url: String,
    api_key: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client of `base_url` (e.g. `http://127.0.0.1:8000`) with `api_key`
    /// (`qcos_...`; only [`Client::health`] and [`Client::pricing`] work without one).
    pub fn new(base_url: impl Into<String>, api_key: Option<String>) -> Self {
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(10)).build();
        let base_url = base_url.into().trim_end_matches('/').to_string();
        Client { base_url, api_key: api_key.filter(|key| !key.is_empty()), agent }
    }

    /// A client configured by `QCOS_URL` (default [`DEFAULT_BASE_URL`]) and `QCOS_API_KEY`.
    pub fn from_env() -> Self {
        let base_url = std::env::var("QCOS_URL").ok().filter(|url| !url.is_empty());
        Client::new(base_url.as_deref().unwrap_or(DEFAULT_BASE_URL), std::env::var("QCOS_API_KEY").ok())
    }

    /// The gateway URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /`: gateway and scheduler health (no key needed).
    pub fn health(&self) -> Result<Health> {
        self.call("GET", "/", &[], None::<&()>, Duration::ZERO)
    }

    /// `POST /execute`: submit one circuit.
    ///
    /// Errors: [`ErrorCode::CircuitInvalid`] (with line and column),
    /// [`ErrorCode::QuotaExceeded`], [`ErrorCode::JobIdConflict`], ...
    pub fn execute(&self, circuit: &Circuit) -> Result<Submission> {
        self.call("POST", "/execute", &[], Some(circuit), Duration::ZERO)
    }

    /// `POST /batches`: submit several circuits at once; each is one job.
    pub fn execute_batch(&self, circuits: &[Circuit]) -> Result<BatchSubmission> {
        #[derive(Serialize)]
        struct Body<'a> {
            circuits: &'a [Circuit],
        }
        self.call("POST", "/batches", &[], Some(&Body { circuits }), Duration::ZERO)
    }

    /// `GET /batches/{batch_id}`: each job's state, and counts once completed.
    /// Errors: [`ErrorCode::BatchNotFound`].
    pub fn batch(&self, batch_id: &str) -> Result<BatchStatus> {
        self.call("GET", &format!("/batches/{}", segment(batch_id)), &[], None::<&()>, Duration::ZERO)
    }

    /// `GET /status/{job_id}`: state, the full result once completed, the error once failed.
    /// Errors: [`ErrorCode::JobNotFound`].
    pub fn status(&self, job_id: &str) -> Result<JobStatus> {
        self.call("GET", &format!("/status/{}", segment(job_id)), &[], None::<&()>, Duration::ZERO)
    }

    /// `GET /results/{job_id}`, once. With `wait`, the gateway holds the
    /// request up to that long (whole seconds, capped by the gateway) until the
    /// job is final; with `None` it answers at once.
    ///
    /// Errors: [`ErrorCode::JobFailed`] (the detail says why), [`ErrorCode::JobNotFound`].
    pub fn results(&self, job_id: &str, wait: Option<Duration>) -> Result<Results> {
        let path = format!("/results/{}", segment(job_id));
        match wait {
            Some(wait) => {
                let seconds = wait.as_secs().to_string();
                self.call("GET", &path, &[("wait", "true"), ("timeout", &seconds)], None::<&()>, wait)
            }
            None => self.call("GET", &path, &[], None::<&()>, Duration::ZERO),
        }
    }

    /// The counts of a job once it completes, waiting up to `timeout` with
    /// the gateway's long poll (no client-side sleeping).
    ///
    /// Errors: [`ErrorCode::JobFailed`] when the job fails; [`Error::WaitTimeout`]
    /// after `timeout` (the job goes on).
    pub fn wait_for_result(&self, job_id: &str, timeout: Duration) -> Result<Counts> {
        let deadline = Instant::now() + timeout;
        loop {
            let wait = poll_until(deadline);
            if let Results::Completed { result, .. } = self.results(job_id, Some(wait))? {
                return Ok(result.counts);
            }
            if wait < Duration::from_secs(1) {
                // The gateway waits whole seconds: under one left, it has already answered at once.
                return Err(Error::WaitTimeout(format!("job {job_id} is not completed after {timeout:?}")));
            }
        }
    }

    /// Waits up to `timeout` until every job of a batch is final; answers the
    /// batch's last state (jobs may have failed: see each job's `status` and
    /// `error`). `on_progress` sees every state fetched. Between looks at the
    /// batch it long-polls one unfinished job.
    ///
    /// Errors: [`ErrorCode::BatchNotFound`], [`Error::WaitTimeout`].
    pub fn wait_for_batch(
        &self,
        batch_id: &str,
        timeout: Duration,
        mut on_progress: impl FnMut(&BatchStatus),
    ) -> Result<BatchStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let batch = self.batch(batch_id)?;
            on_progress(&batch);
            let pending = batch.jobs.iter().find(|job| !job.status.is_final()).map(|job| job.job_id.clone());
            let pending = match pending {
                Some(job_id) if !batch.done => job_id,
                _ => return Ok(batch), // done, or every job final and `done` a moment behind
            };
            let wait = poll_until(deadline);
            if wait < Duration::from_secs(1) {
                return Err(Error::WaitTimeout(format!("batch {batch_id} is not done after {timeout:?}")));
            }
            match self.results(&pending, Some(wait)) {
                Ok(_) => {}
                Err(Error::Api(ApiError { code: ErrorCode::JobFailed, .. })) => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// `DELETE /jobs/{job_id}`: cancel a job; answers its status. A cancelled
    /// job is `failed` with the error `cancelled by the user`; a finished one
    /// is answered unchanged. Errors: [`ErrorCode::JobNotFound`].
    pub fn cancel(&self, job_id: &str) -> Result<JobStatus> {
        self.call("DELETE", &format!("/jobs/{}", segment(job_id)), &[], None::<&()>, Duration::ZERO)
    }

    /// `GET /jobs`: the caller's jobs, newest first.
    pub fn jobs(&self, filter: &ListJobs) -> Result<JobList> {
        let limit = filter.limit.map(|limit| limit.to_string());
        let offset = filter.offset.map(|offset| offset.to_string());
        let mut query = Vec::new();
        if let Some(status) = filter.status {
            query.push(("status", status.as_str()));
        }
        if let Some(limit) = &limit {
            query.push(("limit", limit.as_str()));
        }
        if let Some(offset) = &offset {
            query.push(("offset", offset.as_str()));
        }
        self.call("GET", "/jobs", &query, None::<&()>, Duration::ZERO)
    }

    /// `GET /user/me`: the caller's tier, limits and job counts.
    pub fn me(&self) -> Result<User> {
        self.call("GET", "/user/me", &[], None::<&()>, Duration::ZERO)
    }

    /// `GET /user/usage`: completed jobs of `period` (`YYYY-MM`, UTC; `None`: the current month).
    pub fn usage(&self, period: Option<&str>) -> Result<Usage> {
        let query: Vec<(&str, &str)> = period.map(|period| ("period", period)).into_iter().collect();
        self.call("GET", "/user/usage", &query, None::<&()>, Duration::ZERO)
    }

    /// `GET /pricing`: the tiers (no key needed).
    pub fn pricing(&self) -> Result<Pricing> {
        self.call("GET", "/pricing", &[], None::<&()>, Duration::ZERO)
    }

    /// One request; `wait` is the server-side wait it asks for, added to its timeout.
    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
        wait: Duration,
    ) -> Result<T> {
        let mut request = self
            .agent
            .request(method, &format!("{}{}", self.base_url, path))
            .timeout(REQUEST_TIMEOUT + wait)
            .set("Accept", "application/json");
        for (name, value) in query {
            request = request.query(name, value);
        }
        if let Some(key) = &self.api_key {
            request = request.set("X-API-Key", key);
        }
        let answer = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let response = match answer {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => return Err(Error::Api(api_error(status, response))),
            Err(ureq::Error::Transport(transport)) => return Err(Error::Transport(Box::new(transport))),
        };
        response.into_json().map_err(|error| Error::Decode(format!("{method} {path}: {error}")))
    }
}

/// The API error of an error answer; an answer that is not the API's JSON
/// (a proxy's, or gunicorn's own page) keeps its status as `HTTP_<status>`.
fn api_error(status: u16, response: ureq::Response) -> ApiError {
    #[derive(serde::Deserialize)]
    struct Body {
        detail: String,
        error_code: String,
        request_id: Option<String>,
    }
    let retry_after = response.header("Retry-After").map(str::to_string);
    let header_request_id = response.header("X-Request-ID").map(str::to_string);
    let text = response.into_string().unwrap_or_default();
    match serde_json::from_str::<Body>(&text) {
        Ok(body) => {
            ApiError::new(status, &body.error_code, &body.detail, body.request_id.as_deref(), retry_after.as_deref())
        }
        Err(_) => {
            let detail: String = text.trim().chars().take(200).collect();
            ApiError::new(
                status,
                &format!("HTTP_{status}"),
                &detail,
                header_request_id.as_deref(),
                retry_after.as_deref(),
            )
        }
    }
}

/// How long the next long poll may ask the gateway to wait: up to [`LONG_POLL`], never past `deadline`.
fn poll_until(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()).min(LONG_POLL)
}

/// Escaped in a path segment: all but RFC 3986's unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A job or batch id as one URL path segment.
fn segment(id: &str) -> String {
    utf8_percent_encode(id, PATH_SEGMENT).to_string()
}
