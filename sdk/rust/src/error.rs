//! Errors of the client: an API's error answer, or a failure to get one.

use std::fmt;
use std::time::Duration;

/// The API's `error_code`: a stable name of what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 401: no API key.
    AuthRequired,
    /// 401: unknown, revoked or disabled key.
    AuthInvalid,
    /// 403: an admin endpoint without an admin key.
    AdminRequired,
    /// 429: too many requests; see [`ApiError::retry_after`].
    RateLimited,
    /// 403: more qubits or shots than the tier allows; 429 (with `retry_after`): the daily job limit.
    QuotaExceeded,
    /// 400: a malformed body or parameter.
    InvalidRequest,
    /// 400: the OpenQASM program cannot run; see [`ApiError::line`] and [`ApiError::column`].
    CircuitInvalid,
    /// 404: no such job for this key's user.
    JobNotFound,
    /// 404: no such batch for this key's user.
    BatchNotFound,
    /// 409: the custom `job_id` already names a different job.
    JobIdConflict,
    /// 409: results asked of a failed job; [`ApiError::detail`] says why it failed.
    JobFailed,
    /// 404: no such endpoint.
    NotFound,
    /// 503: the scheduler or the database is unreachable; nothing was kept.
    ServiceUnavailable,
    /// Any other code (`METHOD_NOT_ALLOWED`, `INTERNAL_ERROR`, ...), or `HTTP_<status>`
    /// for an answer that was not the API's JSON.
    Other(String),
}

impl ErrorCode {
    /// The code as the API spells it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::AuthRequired => "AUTH_REQUIRED",
            ErrorCode::AuthInvalid => "AUTH_INVALID",
            ErrorCode::AdminRequired => "ADMIN_REQUIRED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::QuotaExceeded => "QUOTA_EXCEEDED",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::CircuitInvalid => "CIRCUIT_INVALID",
            ErrorCode::JobNotFound => "JOB_NOT_FOUND",
            ErrorCode::BatchNotFound => "BATCH_NOT_FOUND",
            ErrorCode::JobIdConflict => "JOB_ID_CONFLICT",
            ErrorCode::JobFailed => "JOB_FAILED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::Other(code) => code,
        }
    }
}

impl From<&str> for ErrorCode {
    fn from(code: &str) -> Self {
        match code {
            "AUTH_REQUIRED" => ErrorCode::AuthRequired,
            "AUTH_INVALID" => ErrorCode::AuthInvalid,
            "ADMIN_REQUIRED" => ErrorCode::AdminRequired,
            "RATE_LIMITED" => ErrorCode::RateLimited,
            "QUOTA_EXCEEDED" => ErrorCode::QuotaExceeded,
            "INVALID_REQUEST" => ErrorCode::InvalidRequest,
            "CIRCUIT_INVALID" => ErrorCode::CircuitInvalid,
            "JOB_NOT_FOUND" => ErrorCode::JobNotFound,
            "BATCH_NOT_FOUND" => ErrorCode::BatchNotFound,
            "JOB_ID_CONFLICT" => ErrorCode::JobIdConflict,
            "JOB_FAILED" => ErrorCode::JobFailed,
            "NOT_FOUND" => ErrorCode::NotFound,
            "SERVICE_UNAVAILABLE" => ErrorCode::ServiceUnavailable,
            other => ErrorCode::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer of the API: `{"detail": "...", "error_code": "...", "request_id": "req_..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status, e.g. 404.
    pub status: u16,
    pub code: ErrorCode,
    /// Human-readable reason (for [`ErrorCode::JobFailed`]: why the job failed).
    pub detail: String,
    /// The gateway's request id (also in its log).
    pub request_id: Option<String>,
    /// The `Retry-After` header (429 and 503 answers), in whole seconds.
    pub retry_after: Option<Duration>,
    /// 1-based line of a [`ErrorCode::CircuitInvalid`] error in the OpenQASM source, where the gateway names one.
    pub line: Option<u32>,
    /// 1-based column of a [`ErrorCode::CircuitInvalid`] error, where the gateway names one.
    pub column: Option<u32>,
}

impl ApiError {
    /// Builds the error of an answer; `retry_after` is the raw `Retry-After` header
    /// (delta-seconds; an HTTP date is not used by the gateway and is ignored).
    pub fn new(status: u16, code: &str, detail: &str, request_id: Option<&str>, retry_after: Option<&str>) -> Self {
        let code = ErrorCode::from(code);
        let (line, column) = if code == ErrorCode::CircuitInvalid { position(detail) } else { (None, None) };
        ApiError {
            status,
            code,
            detail: detail.to_string(),
            request_id: request_id.map(str::to_string),
            retry_after: retry_after.and_then(|value| value.trim().parse::<u64>().ok()).map(Duration::from_secs),
            line,
            column,
        }
    }
}

/// `line N` and `column M` as the gateway writes them in a circuit error
/// ("Invalid circuit: line 4, column 1: 'foo' is not defined").
fn position(detail: &str) -> (Option<u32>, Option<u32>) {
    fn number_after(text: &str, label: &str) -> Option<u32> {
        // `label` as a word of its own: "line " but not "pipeline ".
        let (at, _) =
            text.match_indices(label).find(|(at, _)| !text[..*at].ends_with(|c: char| c.is_alphanumeric()))?;
        let digits: String = text[at + label.len()..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }
    let line = number_after(detail, "line ");
    let column = line.and_then(|_| number_after(detail, "column "));
    (line, column)
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {}): {}", self.code, self.status, self.detail)?;
        if let Some(request_id) = &self.request_id {
            write!(f, " [{request_id}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Everything a call can fail with.
#[derive(Debug)]
pub enum Error {
    /// The API answered with an error.
    Api(ApiError),
    /// The gateway could not be reached, or did not answer in time.
    Transport(Box<ureq::Transport>),
    /// The answer was not the JSON expected.
    Decode(String),
    /// A wait ([`crate::Client::wait_for_result`], [`crate::Client::wait_for_batch`])
    /// ran out of time; the job goes on.
    WaitTimeout(String),
}

impl Error {
    /// The API error, if this is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(error) => Some(error),
            _ => None,
        }
    }

    /// The API's error code, if this is an API error.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.api().map(|error| &error.code)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api(error) => write!(f, "qcos: {error}"),
            Error::Transport(error) => write!(f, "qcos: {error}"),
            Error::Decode(message) => write!(f, "qcos: unexpected answer: {message}"),
            Error::WaitTimeout(message) => write!(f, "qcos: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Api(error) => Some(error),
            Error::Transport(error) => Some(error.as_ref()),
            _ => None,
        }
    }
}

impl From<ApiError> for Error {
    fn from(error: ApiError) -> Self {
        Error::Api(error)
    }
}

/// The result of every call.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_errors_carry_line_and_column() {
        let error = ApiError::new(
            400,
            "CIRCUIT_INVALID",
            "Invalid circuit: line 4, column 12: 'foo' is not defined",
            Some("req_1"),
            None,
        );
        assert_eq!((error.line, error.column), (Some(4), Some(12)));
        let error = ApiError::new(400, "CIRCUIT_INVALID", "Invalid circuit: line 7: no measurement", None, None);
        assert_eq!((error.line, error.column), (Some(7), None));
        let error = ApiError::new(400, "CIRCUIT_INVALID", "Invalid circuit: the circuit measures nothing", None, None);
        assert_eq!((error.line, error.column), (None, None));
    }

    #[test]
    fn codes_and_retry_after() {
        let error = ApiError::new(429, "RATE_LIMITED", "slow down", None, Some("17"));
        assert_eq!(error.code, ErrorCode::RateLimited);
        assert_eq!(error.retry_after, Some(Duration::from_secs(17)));
        let error = ApiError::new(405, "METHOD_NOT_ALLOWED", "no", None, None);
        assert_eq!(error.code, ErrorCode::Other("METHOD_NOT_ALLOWED".into()));
        assert_eq!(error.to_string(), "METHOD_NOT_ALLOWED (HTTP 405): no");
    }
}
