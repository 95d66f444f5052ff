//! One HTTP POST with bounded retries: no answer, a 5xx or a 429 are tried again after a growing
//! pause (a 429's `Retry-After` is honoured up to a cap); any other answer is final. What is
//! said about a failure never holds the URL (a webhook URL is itself a credential) or a token.

use std::io::Read;
use std::time::Duration;

use crate::secrets::Redactor;

/// The first pause between attempts; it doubles each time.
const FIRST_PAUSE: Duration = Duration::from_millis(200);
/// A `Retry-After` longer than this is cut to it: a notification must not hold a CI job.
const LONGEST_PAUSE: Duration = Duration::from_secs(10);
/// The part of a response body kept (GitHub's answers carry ids cairn needs).
const BODY_CAP: u64 = 256 * 1024;

/// How a POST ended.
#[derive(Debug, Clone)]
pub struct Posted {
    /// The last HTTP status, when there was an answer.
    pub status: Option<u16>,
    pub attempts: u32,
    /// The body of a 2xx answer.
    pub body: String,
    /// Why it did not succeed, already redacted.
    pub error: Option<String>,
}

impl Posted {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

pub struct Request<'a> {
    pub url: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
    pub retries: u32,
}

pub fn post(request: &Request, redact: &Redactor) -> Posted {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(request.timeout))
        .http_status_as_error(false)
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut attempts = 0;
    let mut pause = FIRST_PAUSE;
    loop {
        attempts += 1;
        let mut builder = agent.post(request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value.as_str());
        }
        let (status, retry, error, body, wait) = match builder.send(&request.body[..]) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let mut body = String::new();
                // A body that cannot be read is not a failed delivery: the status says it arrived.
                let _ = response.body_mut().as_reader().take(BODY_CAP).read_to_string(&mut body);
                let after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(LONGEST_PAUSE));
                match status {
                    200..=299 => (Some(status), false, None, body, None),
                    429 | 500..=599 => (
                        Some(status),
                        true,
                        Some(format!("the receiver answered {status}{}", snippet(&body))),
                        body,
                        after,
                    ),
                    _ => (
                        Some(status),
                        false,
                        Some(format!("the receiver refused it: {status}{}", snippet(&body))),
                        body,
                        None,
                    ),
                }
            }
            Err(e) => {
                let (retry, words) = describe(&e, request.timeout);
                (None, retry, Some(words), String::new(), None)
            }
        };
        if error.is_none() || !retry || attempts > request.retries {
            return Posted {
                status,
                attempts,
                body: if error.is_none() { body } else { String::new() },
                error: error.map(|e| redact.clean(&e)),
            };
        }
        std::thread::sleep(wait.unwrap_or(pause));
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// The start of an error answer, on one line: receivers usually say what they did not like.
fn snippet(body: &str) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
    if line.is_empty() { String::new() } else { format!(" ({line})") }
}

/// Whether a transport failure is worth another attempt, and what to say about it — in words of
/// cairn's own, so that no URL reaches the record.
fn describe(e: &ureq::Error, timeout: Duration) -> (bool, String) {
    match e {
        ureq::Error::Timeout(_) => (true, format!("no answer within {}", crate::duration::format(timeout))),
        ureq::Error::HostNotFound => (true, "the receiver's host name does not resolve".to_string()),
        ureq::Error::ConnectionFailed => (true, "the connection to the receiver failed".to_string()),
        // rustls reports a refused handshake (an unknown issuer, a name mismatch) as invalid data.
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => (false, format!("TLS failed: {io}")),
        ureq::Error::Io(io) => (true, format!("the connection failed: {}", io.kind())),
        ureq::Error::Tls(why) => (false, format!("TLS failed: {why}")),
        ureq::Error::Rustls(why) => (false, format!("TLS failed: {why}")),
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            (false, "the receiver's URL is not a valid http(s) URL (check the variable's value)".to_string())
        }
        other => (true, format!("the request failed: {}", other.to_string().split(':').next().unwrap_or("error"))),
    }
}
