//! The client against a live gateway: QCOS_URL and QCOS_API_KEY (`make
//! sdk-test` sets both). Without them each test returns at once with a note,
//! except under CI=true, where it fails.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use qcos::{Circuit, Client, Error, ErrorCode, JobState, ListJobs, Results};

const BELL: &str = r#"OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;"#;
const GHZ3: &str =
    r#"OPENQASM 2.0; include "qelib1.inc"; qreg q[3]; creg c[3]; h q[0]; cx q[0],q[1]; cx q[1],q[2]; measure q -> c;"#;

/// Runs for many seconds (a state vector of 20 qubits, 41,000 gates, not Clifford); the tests cancel it long before.
fn slow() -> Circuit {
    let body = "h q; t q; cx q[0],q[19]; ".repeat(1000);
    Circuit::new(format!(r#"OPENQASM 2.0; include "qelib1.inc"; qreg q[20]; creg c[20]; {body}measure q -> c;"#))
        .shots(10)
}

fn live() -> Option<Client> {
    let configured =
        ["QCOS_URL", "QCOS_API_KEY"].iter().all(|name| std::env::var(name).map_or(false, |v| !v.is_empty()));
    if configured {
        return Some(Client::from_env());
    }
    let ci = std::env::var("CI").unwrap_or_default().to_lowercase();
    if ["1", "true", "yes"].contains(&ci.as_str()) {
        panic!("QCOS_URL and QCOS_API_KEY must name a live gateway (CI=true: real components are required)");
    }
    eprintln!("skipped: no live gateway (set QCOS_URL and QCOS_API_KEY; make sdk-test does)");
    None
}

/// The live client, or return from the test (see [`live`]).
macro_rules! live {
    () => {
        match live() {
            Some(client) => client,
            None => return,
        }
    };
}

fn without_key(client: &Client, key: Option<&str>) -> Client {
    Client::new(client.base_url(), key.map(str::to_string))
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{:x}-{:x}", nanos, std::process::id())
}

fn api_code<T: std::fmt::Debug>(answer: qcos::Result<T>) -> qcos::ApiError {
    match answer {
        Err(Error::Api(error)) => error,
        other => panic!("want an API error, got {other:?}"),
    }
}

/// Fails the test with a message that says so when the gateway has no /batches endpoint.
fn batch_endpoint<T>(client: &Client, answer: &qcos::Result<T>) {
    if let Err(Error::Api(error)) = answer {
        if error.code == ErrorCode::NotFound {
            panic!("the gateway at {} has no /batches endpoint (404 NOT_FOUND): {error}", client.base_url());
        }
    }
}

#[test]
fn health_and_pricing_need_no_key() {
    let client = live!();
    let anonymous = without_key(&client, None);
    let health = anonymous.health().unwrap();
    assert!(["healthy", "degraded"].contains(&health.status.as_str()), "{health:?}");
    assert!(!health.version.is_empty() && health.queue_connected);
    let pricing = anonymous.pricing().unwrap();
    let names: Vec<_> = pricing.tiers.iter().map(|tier| tier.name.as_str()).collect();
    assert_eq!(names, ["free", "pro", "enterprise"]);
    assert_eq!(pricing.tiers[0].price_monthly, Some(0));
}

#[test]
fn me() {
    let client = live!();
    let me = client.me().unwrap();
    assert_eq!(me.tier, "enterprise");
    assert!(me.email.contains('@') && me.max_qubits > 0 && me.jobs_total >= me.jobs_today, "{me:?}");
}

#[test]
fn bell_flow() {
    let client = live!();
    let job = client.execute(&Circuit::new(BELL).shots(1000)).unwrap();
    assert_eq!(job.status, JobState::Queued);
    // The local executor needs seconds to start the simulator: the job is not done yet.
    let early = client.results(&job.job_id, None).unwrap();
    assert_eq!(early, Results::Pending { job_id: job.job_id.clone(), message: "Job not yet completed".into() });

    let counts = client.wait_for_result(&job.job_id, Duration::from_secs(180)).unwrap();
    assert_eq!(counts.values().sum::<u64>(), 1000);
    assert!(counts.keys().all(|key| key == "00" || key == "11"), "{counts:?}");

    let status = client.status(&job.job_id).unwrap();
    assert_eq!(status.status, JobState::Completed);
    let result = status.result.expect("a completed job has its result");
    assert_eq!((result.shots, result.num_qubits), (1000, 2));
    assert_eq!(result.counts, counts);
    assert!(result.extra.contains_key("method"), "{:?}", result.extra);
    assert_eq!(status.error, None);
    assert_eq!(client.results(&job.job_id, None).unwrap().counts(), Some(&counts));
}

#[test]
fn waiting_ends_at_its_timeout_and_the_job_goes_on() {
    let client = live!();
    let job = client.execute(&slow()).unwrap();
    let started = Instant::now();
    let answer = client.wait_for_result(&job.job_id, Duration::from_secs(2));
    let elapsed = started.elapsed();
    let status = client.status(&job.job_id).unwrap().status;
    client.cancel(&job.job_id).unwrap();
    assert!(matches!(answer, Err(Error::WaitTimeout(_))), "{answer:?}");
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(4), "waited {elapsed:?}");
    assert!(!status.is_final(), "{status:?}");
}

#[test]
fn custom_job_id_is_idempotent_and_conflicts() {
    let client = live!();
    let id = unique("rust-idem");
    for _ in 0..2 {
        assert_eq!(client.execute(&Circuit::new(BELL).shots(64).job_id(&id)).unwrap().job_id, id);
    }
    let error = api_code(client.execute(&Circuit::new(BELL).shots(65).job_id(&id)));
    assert_eq!((error.status, error.code.clone()), (409, ErrorCode::JobIdConflict));
    assert!(error.request_id.as_deref().unwrap_or_default().starts_with("req_"), "{error:?}");
}

#[test]
fn invalid_circuit_names_line_and_column() {
    let client = live!();
    let error =
        api_code(client.execute(&Circuit::new("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\nfoo q[0];\n")));
    assert_eq!((error.status, error.code.clone()), (400, ErrorCode::CircuitInvalid));
    assert_eq!((error.line, error.column), (Some(4), Some(1)));
    assert!(error.detail.contains("foo"), "{error:?}");
}

#[test]
fn shots_out_of_range() {
    let client = live!();
    let max_shots = client.me().unwrap().max_shots as u64;
    let error = api_code(client.execute(&Circuit::new(BELL).shots(max_shots + 1)));
    assert_eq!((error.status, error.code.clone(), error.retry_after), (403, ErrorCode::QuotaExceeded, None));
    let error = api_code(client.execute(&Circuit::new(BELL).shots(0)));
    assert_eq!(error.code, ErrorCode::InvalidRequest);
}

#[test]
fn keys() {
    let client = live!();
    assert_eq!(api_code(without_key(&client, None).me()).code, ErrorCode::AuthRequired);
    let error = api_code(without_key(&client, Some("qcos_not-a-key")).me());
    assert_eq!((error.status, error.code), (401, ErrorCode::AuthInvalid));
}

#[test]
fn unknown_job() {
    let client = live!();
    let id = unique("rust-missing");
    assert_eq!(api_code(client.status(&id)).code, ErrorCode::JobNotFound);
    assert_eq!(api_code(client.results(&id, None)).code, ErrorCode::JobNotFound);
    let error = api_code(client.cancel(&id));
    assert_eq!((error.status, error.code), (404, ErrorCode::JobNotFound));
}

#[test]
fn cancelled_job_fails_with_its_reason() {
    let client = live!();
    let job = client.execute(&slow()).unwrap();
    let cancelled = client.cancel(&job.job_id).unwrap();
    assert_eq!(cancelled.status, JobState::Failed);
    assert_eq!(cancelled.error.as_deref(), Some("cancelled by the user"));
    assert_eq!(client.cancel(&job.job_id).unwrap(), cancelled);
    let error = api_code(client.wait_for_result(&job.job_id, Duration::from_secs(30)));
    assert_eq!((error.status, error.code.clone()), (409, ErrorCode::JobFailed));
    assert!(error.detail.contains("cancelled by the user"), "{error:?}");
}

#[test]
fn jobs_newest_first_and_filtered() {
    let client = live!();
    let failed = client.execute(&slow()).unwrap();
    client.cancel(&failed.job_id).unwrap();
    let newest = client.execute(&Circuit::new(BELL).shots(10).job_id(unique("rust-list"))).unwrap();
    let page = client.jobs(&ListJobs { limit: Some(2), ..ListJobs::default() }).unwrap();
    assert_eq!((page.limit, page.jobs.len()), (2, 2));
    assert!(page.total >= 2);
    // Other tests submit at the same time: the two jobs need not be adjacent, only in order.
    let all = client.jobs(&ListJobs { limit: Some(100), ..ListJobs::default() }).unwrap();
    let at = |id: &str| all.jobs.iter().position(|job| job.job_id == id);
    assert!(at(&newest.job_id).unwrap() < at(&failed.job_id).unwrap(), "{all:?}");
    let only_failed =
        client.jobs(&ListJobs { status: Some(JobState::Failed), limit: Some(100), offset: None }).unwrap();
    assert!(only_failed.jobs.iter().all(|job| job.status == JobState::Failed));
    assert!(only_failed.jobs.iter().any(|job| job.job_id == failed.job_id));
    let error = api_code(client.jobs(&ListJobs { limit: Some(101), ..ListJobs::default() }));
    assert_eq!(error.code, ErrorCode::InvalidRequest);
}

#[test]
fn usage() {
    let client = live!();
    let job = client.execute(&Circuit::new(BELL).shots(10)).unwrap();
    client.wait_for_result(&job.job_id, Duration::from_secs(180)).unwrap();
    let now = client.usage(None).unwrap();
    assert!(now.period.len() == 7 && now.period.as_bytes()[4] == b'-', "{now:?}");
    assert!(now.jobs_executed >= 1 && now.total_shots >= 10 && now.daily_usage[0].jobs >= 1, "{now:?}");
    let old = client.usage(Some("2024-01")).unwrap();
    assert_eq!((old.period.as_str(), old.jobs_executed, old.daily_usage.len()), ("2024-01", 0, 0));
    assert_eq!(api_code(client.usage(Some("2024-13"))).code, ErrorCode::InvalidRequest);
}

#[test]
fn batch_runs_every_circuit() {
    let client = live!();
    let custom_id = unique("rust-batch");
    let answer = client.execute_batch(&[Circuit::new(BELL), Circuit::new(GHZ3).shots(300).job_id(&custom_id)]);
    batch_endpoint(&client, &answer);
    let submitted = answer.unwrap();
    assert!(submitted.batch_id.starts_with("batch_"), "{submitted:?}");
    assert_eq!((submitted.count, submitted.job_ids.len()), (2, 2));
    assert_eq!(submitted.job_ids[1], custom_id);

    let mut seen = Vec::new();
    let batch =
        client.wait_for_batch(&submitted.batch_id, Duration::from_secs(300), |state| seen.push(state.clone())).unwrap();
    assert_eq!(seen.last(), Some(&batch));
    assert!(batch.done);
    assert_eq!(batch.counts.get(&JobState::Completed), Some(&2));
    assert_eq!(batch.counts.get(&JobState::Failed), Some(&0));
    let by_id: BTreeMap<_, _> = batch.jobs.iter().map(|job| (job.job_id.as_str(), job)).collect();
    let bell = by_id[submitted.job_ids[0].as_str()].result.as_ref().unwrap();
    assert_eq!(bell.counts.values().sum::<u64>(), 1024);
    let ghz = by_id[custom_id.as_str()].result.as_ref().unwrap();
    assert_eq!(ghz.counts.keys().collect::<Vec<_>>(), ["000", "111"]);
    // Each job of a batch is a job like any other.
    assert_eq!(client.status(&custom_id).unwrap().status, JobState::Completed);
}

#[test]
fn unknown_batch() {
    let client = live!();
    let answer = client.batch("batch_0123456789abcdef");
    batch_endpoint(&client, &answer);
    let error = api_code(answer);
    assert_eq!((error.status, error.code), (404, ErrorCode::BatchNotFound));
}
