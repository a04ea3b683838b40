//! How answers become errors and requests are formed, against a stand-in
//! server on a loopback port (no gateway needed): the answers a live gateway
//! cannot be made to give on demand.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use qcos::{Circuit, Client, Error, ErrorCode, JobState, ListJobs};

/// One request as the stand-in saw it: request line, `X-API-Key`, body.
#[derive(Debug)]
struct Seen {
    line: String,
    key: Option<String>,
    body: String,
}

/// A server answering every request with `status`, `headers` and `body`;
/// the client talks to it, the receiver gets each request.
fn stand_in(status: &str, headers: &[&str], body: &str) -> (Client, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let response = format!(
        "HTTP/1.1 {status}\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        headers.iter().map(|header| format!("{header}\r\n")).collect::<String>(),
        body.len()
    );
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut seen = Seen { line: String::new(), key: None, body: String::new() };
            reader.read_line(&mut seen.line).unwrap();
            seen.line = seen.line.trim_end().to_string();
            let mut length = 0;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(": ").unwrap();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse().unwrap(),
                    "x-api-key" => seen.key = Some(value.to_string()),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            seen.body = String::from_utf8(body).unwrap();
            stream.write_all(response.as_bytes()).unwrap();
            if sender.send(seen).is_err() {
                return;
            }
        }
    });
    (Client::new(url, Some("qcos_k".into())), receiver)
}

fn api_error<T: std::fmt::Debug>(answer: qcos::Result<T>) -> qcos::ApiError {
    match answer {
        Err(Error::Api(error)) => error,
        other => panic!("want an API error, got {other:?}"),
    }
}

#[test]
fn rate_limited_carries_retry_after() {
    let body =
        r#"{"detail": "Rate limit of 10 per 1 minute exceeded", "error_code": "RATE_LIMITED", "request_id": "req_1"}"#;
    let (client, _) = stand_in("429 Too Many Requests", &["Retry-After: 17"], body);
    let error = api_error(client.me());
    assert_eq!(error.code, ErrorCode::RateLimited);
    assert_eq!(error.retry_after, Some(Duration::from_secs(17)));
    assert_eq!((error.status, error.request_id.as_deref()), (429, Some("req_1")));
}

#[test]
fn daily_quota_is_a_quota_error_with_retry_after() {
    let body = r#"{"detail": "Daily job limit of 10 reached", "error_code": "QUOTA_EXCEEDED", "request_id": "req_2"}"#;
    let (client, _) = stand_in("429 Too Many Requests", &["Retry-After: 3600"], body);
    let error = api_error(client.execute(&Circuit::new("OPENQASM 2.0;")));
    assert_eq!((error.code, error.retry_after), (ErrorCode::QuotaExceeded, Some(Duration::from_secs(3600))));
}

#[test]
fn a_non_json_error_page_keeps_its_status_and_text() {
    let (client, _) = stand_in("414 Request-URI Too Long", &[], "<h1>Request Line is too large</h1>");
    let error = api_error(client.status("x"));
    assert_eq!(error.code, ErrorCode::Other("HTTP_414".into()));
    assert_eq!(error.detail, "<h1>Request Line is too large</h1>");
}

#[test]
fn an_unexpected_body_is_a_decode_error() {
    let (client, _) = stand_in("200 OK", &["Content-Type: application/json"], r#"{"tiers": "none"}"#);
    assert!(matches!(client.pricing(), Err(Error::Decode(_))));
}

#[test]
fn requests_carry_the_key_json_bodies_encoded_ids_and_queries() {
    let (client, seen) = stand_in("200 OK", &["Content-Type: application/json"], "{}");
    let _ = client.execute(&Circuit::new("QASM").shots(5));
    let _ = client.status("a/b?c d");
    let _ = client.results("j-1.x", Some(Duration::from_millis(7900)));
    let _ = client.jobs(&ListJobs { status: Some(JobState::Failed), limit: Some(3), offset: None });
    let _ = client.usage(None);
    let execute = seen.recv().unwrap();
    assert_eq!(execute.line, "POST /execute HTTP/1.1");
    assert_eq!(execute.key.as_deref(), Some("qcos_k"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&execute.body).unwrap(),
        serde_json::json!({"qasm": "QASM", "shots": 5})
    );
    let lines: Vec<_> = seen.iter().take(4).map(|request| request.line).collect();
    assert_eq!(
        lines,
        [
            "GET /status/a%2Fb%3Fc%20d HTTP/1.1",
            "GET /results/j-1.x?wait=true&timeout=7 HTTP/1.1",
            "GET /jobs?status=failed&limit=3 HTTP/1.1",
            "GET /user/usage HTTP/1.1",
        ]
    );
}

#[test]
fn an_unreachable_gateway_is_a_transport_error() {
    let client = Client::new("http://127.0.0.1:9", None);
    assert!(matches!(client.health(), Err(Error::Transport(_))));
}

#[test]
fn health_lists_the_sources_that_are_down() {
    let body = r#"{"status": "degraded", "version": "1.0.0", "queue_connected": true, "degraded": ["accounting"]}"#;
    let (client, _) = stand_in("200 OK", &["Content-Type: application/json"], body);
    let health = client.health().unwrap();
    assert_eq!((health.status.as_str(), health.queue_connected), ("degraded", true));
    assert_eq!(health.degraded, vec!["accounting".to_string()]);
    let healthy = r#"{"status": "healthy", "version": "1.0.0", "queue_connected": true}"#;
    let (client, _) = stand_in("200 OK", &["Content-Type: application/json"], healthy);
    assert!(client.health().unwrap().degraded.is_empty());
}
