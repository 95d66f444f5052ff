//! Taking one measurement: an HTTP request, a Prometheus query, an acceptance-test command. Each
//! returns what it saw; the counting rules live in `delivery`. A measurement that cannot be taken
//! (unreachable, timed out) is an `Error` phase, not a failure; a check that can never work (a
//! query the server rejects) is an `Err`, which stops the verification with exit 2.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{CommandProbe, HttpProbe, PrometheusProbe};
use crate::error::{Error, Result};
use crate::expr::{Condition, Value};
use crate::release::verification::Phase;

use super::Fill;
use crate::secrets::Redactor;

/// What one measurement saw, before it is timed and recorded.
pub struct Seen {
    pub phase: Phase,
    pub value: Option<String>,
    pub message: Option<String>,
    pub output: Option<String>,
}

impl Seen {
    fn error(message: String) -> Seen {
        Seen { phase: Phase::Error, value: None, message: Some(message), output: None }
    }
}

/// Most of a command's output kept in the record: its end, where the failure usually is.
const OUTPUT_CAP: usize = 4096;
/// A response body larger than this is not read further (a health endpoint is small).
const BODY_CAP: u64 = 4 * 1024 * 1024;

fn agent(timeout: Duration, insecure: bool) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false);
    if insecure {
        config = config.tls_config(ureq::tls::TlsConfig::builder().disable_verification(true).build());
    }
    config.build().into()
}

/// Argo's rule for two conditions over one result (utils/evaluate): none given passes; one
/// given decides both ways; both given and both true fails; both given and neither true is
/// inconclusive. A condition that cannot be evaluated makes the measurement an error.
pub fn judge(
    result: &Value,
    success: Option<&Condition>,
    failure: Option<&Condition>,
) -> std::result::Result<(Phase, Option<String>), String> {
    let names = BTreeMap::from([("result".to_string(), result.clone())]);
    let eval = |c: &Condition| c.holds(&names).map_err(|e| format!("`{}` cannot be evaluated: {e}", c.text));
    let ok = success.map(eval).transpose()?;
    let bad = failure.map(eval).transpose()?;
    Ok(match (ok, bad) {
        (None, None) => (Phase::Passed, None),
        (Some(true), None) => (Phase::Passed, None),
        (Some(false), None) => (Phase::Failed, success.map(|c| format!("`{}` is false", c.text))),
        (None, Some(false)) => (Phase::Passed, None),
        (_, Some(true)) => (Phase::Failed, failure.map(|c| format!("failure condition `{}` is true", c.text))),
        (Some(true), Some(false)) => (Phase::Passed, None),
        (Some(false), Some(false)) => {
            (Phase::Inconclusive, Some("neither the success nor the failure condition holds".to_string()))
        }
    })
}

pub fn http(probe: &HttpProbe, fill: &Fill, timeout: Duration, redact: &Redactor) -> Seen {
    let url = fill.text(&probe.url);
    let mut request = ureq::http::Request::builder().method(probe.method.as_str()).uri(url.as_str());
    for (name, value) in &probe.headers {
        request = request.header(name.as_str(), fill.value(value));
    }
    let body = probe.body.as_deref().map(|b| fill.text(b)).unwrap_or_default();
    if probe.body.is_some() && !request.headers_ref().is_some_and(|h| h.contains_key("content-type")) {
        request = request.header("content-type", "application/json");
    }
    let request = match request.body(body.into_bytes()) {
        Ok(r) => r,
        Err(e) => return Seen::error(redact.clean(&format!("the request cannot be made: {e}"))),
    };
    let started = Instant::now();
    let mut response = match agent(timeout, probe.insecure).run(request) {
        Ok(r) => r,
        Err(e) => return Seen::error(redact.clean(&request_failed(&e, timeout))),
    };
    let status = response.status().as_u16();
    let text = match response.body_mut().with_config().limit(BODY_CAP).read_to_string() {
        Ok(t) => t,
        Err(e) => return Seen::error(redact.clean(&format!("the response could not be read: {e}"))),
    };
    let latency = started.elapsed();
    let value = Some(format!("status {status} in {}ms", latency.as_millis()));
    let fail = |message: String| Seen {
        phase: Phase::Failed,
        value: value.clone(),
        message: Some(redact.clean(&message)),
        output: None,
    };
    let expect = &probe.expect;
    let status_ok =
        if expect.status.is_empty() { (200..300).contains(&status) } else { expect.status.contains(&status) };
    if !status_ok {
        if probe.non_2xx_is_error {
            return Seen::error(format!("received non 2xx response code: {status}"));
        }
        let wanted = if expect.status.is_empty() {
            "2xx".to_string()
        } else {
            expect.status.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")
        };
        return fail(format!("status {status}, expected {wanted}"));
    }
    if let Some(limit) = expect.latency
        && latency > limit
    {
        return fail(format!(
            "took {}ms, more than the latency bound {}",
            latency.as_millis(),
            crate::duration::format(limit)
        ));
    }
    if let Some(re) = &expect.body_regex
        && !re.is_match(&text)
    {
        return fail(format!("the body does not match /{}/", re.as_str()));
    }
    let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    if let Some((pointer, wanted)) = &expect.pointer {
        let found = json.as_ref().and_then(|j| j.pointer(pointer));
        if found != Some(wanted) {
            return fail(match (&json, found) {
                (None, _) => format!("the body is not JSON, so `{pointer}` cannot be compared with {wanted}"),
                (Some(_), None) => format!("the body has nothing at `{pointer}` (expected {wanted})"),
                (Some(_), Some(v)) => format!("`{pointer}` is {v}, expected {wanted}"),
            });
        }
    }
    if probe.success.is_none() && probe.failure.is_none() {
        return Seen { phase: Phase::Passed, value, message: None, output: None };
    }
    // Argo's web provider: the JSON body (or the plain text when it is not JSON), narrowed by
    // the JSON path to its first match.
    let result = match (&json, &probe.json_path) {
        (None, _) => Value::Str(text.clone()),
        (Some(j), None) => Value::from_json(j),
        (Some(j), Some(path)) => match json_path(j, path) {
            Ok(Some(v)) => Value::from_json(v),
            Ok(None) => return Seen::error("result of web metric produced no value".to_string()),
            Err(e) => return Seen::error(format!("Could not find JSONPath in body: {e}")),
        },
    };
    let shown = Some(redact.clean(&format!("{result}")));
    match judge(&result, probe.success.as_ref(), probe.failure.as_ref()) {
        Ok((phase, message)) => Seen { phase, value: shown, message: message.map(|m| redact.clean(&m)), output: None },
        Err(e) => Seen { phase: Phase::Error, value: shown, message: Some(redact.clean(&e)), output: None },
    }
}

fn request_failed(e: &ureq::Error, timeout: Duration) -> String {
    match e {
        ureq::Error::Timeout(_) => format!("no answer within the timeout of {}", crate::duration::format(timeout)),
        other => format!("the request failed: {other}"),
    }
}

/// The subset of Kubernetes JSONPath Argo's web metrics use: `{$.a.b[0]}`, `{.a['b']}`, `$`.
/// The first match.
pub fn json_path<'v>(
    value: &'v serde_json::Value,
    path: &str,
) -> std::result::Result<Option<&'v serde_json::Value>, String> {
    let inner = path.trim();
    let inner = inner.strip_prefix('{').and_then(|p| p.strip_suffix('}')).unwrap_or(inner).trim();
    let mut rest = inner.strip_prefix('$').unwrap_or(inner);
    let mut at = value;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() {
                return Err(format!("`{path}`: an empty field name"));
            }
            match at.get(key) {
                Some(v) => at = v,
                None => return Ok(None),
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| format!("`{path}`: a `[` is not closed"))?;
            let index = r[..end].trim();
            let next = if let Some(key) = index.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')) {
                at.get(key)
            } else if let Some(key) = index.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
                at.get(key)
            } else {
                let i: i64 = index
                    .parse()
                    .map_err(|_| format!("`{path}`: `[{index}]` is not supported (use an index or a quoted name)"))?;
                let len = at.as_array().map_or(0, Vec::len) as i64;
                let i = if i < 0 { len + i } else { i };
                usize::try_from(i).ok().and_then(|i| at.get(i))
            };
            match next {
                Some(v) => at = v,
                None => return Ok(None),
            }
            rest = &r[end + 1..];
        } else {
            return Err(format!("`{path}`: unexpected `{rest}`"));
        }
    }
    Ok(Some(at))
}

pub fn prometheus(
    probe: &PrometheusProbe,
    fill: &Fill,
    timeout: Duration,
    redact: &Redactor,
    check: &str,
) -> Result<Seen> {
    let query = fill.text(&probe.query);
    let url = format!("{}/api/v1/query", probe.address.trim_end_matches('/'));
    let mut request = agent(timeout, false).get(&url).query("query", &query);
    for (name, value) in &probe.headers {
        request = request.header(name.as_str(), fill.value(value));
    }
    let mut response = match request.call() {
        Ok(r) => r,
        Err(e) => return Ok(Seen::error(redact.clean(&request_failed(&e, timeout)))),
    };
    let status = response.status().as_u16();
    let text = match response.body_mut().with_config().limit(BODY_CAP).read_to_string() {
        Ok(t) => t,
        Err(e) => return Ok(Seen::error(redact.clean(&format!("the answer could not be read: {e}")))),
    };
    let Ok(answer) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(Seen::error(format!(
            "status {status}: the answer is not Prometheus' JSON (is `{}` a Prometheus server?)",
            probe.address
        )));
    };
    if answer["status"] != "success" {
        let kind = answer["errorType"].as_str().unwrap_or("error");
        let message = answer["error"].as_str().unwrap_or("no message");
        // A query the server rejects will be rejected every time: the check is broken.
        if kind == "bad_data" || status == 400 || status == 422 {
            return Err(Error::Verify {
                check: check.to_string(),
                message: redact.clean(&format!(
                    "Prometheus at {} rejected the query ({kind}: {message}); the query was: {}",
                    probe.address,
                    query.trim()
                )),
            });
        }
        return Ok(Seen::error(redact.clean(&format!("Prometheus answered {status} ({kind}: {message})"))));
    }
    let data = &answer["data"];
    let sample =
        |v: &serde_json::Value| -> f64 { v.get(1).and_then(|s| s.as_str()).and_then(parse_float).unwrap_or(f64::NAN) };
    let result = match data["resultType"].as_str() {
        Some("scalar") => Value::Num(sample(&data["result"])),
        Some("vector") => Value::List(
            data["result"].as_array().into_iter().flatten().map(|s| Value::Num(sample(&s["value"]))).collect(),
        ),
        // Argo flattens every series' values into one list.
        Some("matrix") => Value::List(
            data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s["values"].as_array().into_iter().flatten().map(|v| Value::Num(sample(v))))
                .collect(),
        ),
        other => {
            return Err(Error::Verify {
                check: check.to_string(),
                message: format!(
                    "the query gives a {} result; a check needs a scalar or a vector (Prometheus metric type not supported)",
                    other.unwrap_or("missing")
                ),
            });
        }
    };
    let shown = Some(format!("{result}"));
    if probe.empty_is_inconclusive && matches!(&result, Value::List(items) if items.is_empty()) {
        return Ok(Seen {
            phase: Phase::Inconclusive,
            value: shown,
            message: Some("the query returned no data".to_string()),
            output: None,
        });
    }
    Ok(match judge(&result, probe.success.as_ref(), probe.failure.as_ref()) {
        Ok((phase, message)) => Seen { phase, value: shown, message, output: None },
        Err(e) => {
            let empty = matches!(&result, Value::List(items) if items.is_empty());
            let message = if empty {
                format!("{e}: metric result is nil or empty: no data returned from the metric provider")
            } else {
                e
            };
            Seen { phase: Phase::Error, value: shown, message: Some(message), output: None }
        }
    })
}

/// Go's ParseFloat spellings Prometheus uses: `NaN`, `+Inf`, `-Inf`.
fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// Kills a command and every process of its group.
fn kill_group(child: &mut std::process::Child) {
    crate::process::kill_group(child.id());
    let _ = child.kill();
    let _ = child.wait();
}

pub fn command(
    probe: &CommandProbe,
    fill: &Fill,
    timeout: Duration,
    redact: &Redactor,
    root: &Path,
    vars: &[(String, String)],
    stopped: &dyn Fn() -> bool,
) -> Seen {
    let argv: Vec<String> = probe.argv.iter().map(|a| fill.text(a)).collect();
    let dir = match &probe.dir {
        Some(d) => root.join(d),
        None => root.to_path_buf(),
    };
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).current_dir(&dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // Its own process group, so a timeout or a stop ends what it started too (`sh -c 'sleep 30'`
    // leaves a `sleep` holding the output pipes otherwise).
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    for (name, value) in vars {
        command.env(name, value);
    }
    for (name, value) in &probe.env {
        command.env(name, fill.value(value));
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Seen::error(redact.clean(&format!("`{}` could not be started in {}: {e}", argv[0], dir.display())));
        }
    };
    // Read both pipes while waiting, so a chatty test cannot fill a pipe and hang.
    let readers: Vec<_> = [
        child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>),
        child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut pipe| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * OUTPUT_CAP {
                    kept.drain(..kept.len() - OUTPUT_CAP);
                }
            }
            kept
        })
    })
    .collect();
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= timeout => {
                kill_group(&mut child);
                break None;
            }
            Ok(None) if stopped() => {
                kill_group(&mut child);
                return Seen::error(
                    "stopped: the verification ended (or was cancelled) before the command finished".into(),
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Seen::error(format!("waiting for `{}` failed: {e}", argv[0])),
        }
    };
    let mut output = Vec::new();
    for reader in readers {
        output.extend(reader.join().unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&output);
    let text = redact.clean(&text);
    let text = if text.len() > OUTPUT_CAP {
        let mut cut = text.len() - OUTPUT_CAP;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        format!("…{}", &text[cut..])
    } else {
        text
    };
    let output = if text.trim().is_empty() { None } else { Some(text) };
    match status {
        None => Seen {
            phase: Phase::Failed,
            value: None,
            message: Some(format!(
                "did not finish within the timeout of {}; stopped",
                crate::duration::format(timeout)
            )),
            output,
        },
        Some(s) if s.success() => Seen { phase: Phase::Passed, value: Some("exit 0".into()), message: None, output },
        Some(s) => Seen {
            phase: Phase::Failed,
            value: Some(s.code().map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}"))),
            message: Some(redact.clean(&format!("`{}` failed", argv.join(" ")))),
            output,
        },
    }
}
