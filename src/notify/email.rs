//! The mail channel: the release notes as a multipart/alternative message (the Markdown as the
//! text part, the HTML as the other), sent over SMTP with STARTTLS (or SMTPS) by lettre. The
//! Message-ID is the delivery id, so a copy sent twice is one message to mail systems.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};

use super::message::Message;
use super::{Attempt, MailBody, Outbox};
use crate::config::{Channel, ChannelKind, SmtpTls};
use crate::secrets::Redactor;

pub fn send(
    outbox: &Outbox,
    channel: &Channel,
    message: &Message,
    body: &MailBody,
    id: &str,
    redact: &Redactor,
) -> Attempt {
    let ChannelKind::Email { host, port, from, to, tls, username_env, password_env, ca_file } = &channel.kind else {
        return Attempt::failed("internal: not a mail channel".to_string());
    };
    let built = build(from, to, message, body, id);
    let email = match built {
        Ok(e) => e,
        Err(why) => return Attempt::failed(redact.clean(&why)),
    };
    let mut builder = SmtpTransport::builder_dangerous(host.as_str()).port(*port).timeout(Some(channel.timeout));
    if *tls != SmtpTls::None {
        let mut parameters = TlsParameters::builder(host.clone());
        if let Some(path) = ca_file {
            let full = outbox.root.join(path);
            let pem = match std::fs::read(&full) {
                Ok(p) => p,
                Err(e) => return Attempt::failed(format!("{}: cannot read the CA file: {e}", full.display())),
            };
            match Certificate::from_pem(&pem) {
                Ok(cert) => parameters = parameters.add_root_certificate(cert),
                Err(e) => return Attempt::failed(format!("{}: not a PEM certificate: {e}", full.display())),
            }
        }
        let parameters = match parameters.build_rustls() {
            Ok(p) => p,
            Err(e) => return Attempt::failed(redact.clean(&format!("TLS settings for {host}: {e}"))),
        };
        builder =
            builder.tls(if *tls == SmtpTls::Implicit { Tls::Wrapper(parameters) } else { Tls::Required(parameters) });
    }
    if let (Some(user), Some(password)) = (username_env, password_env) {
        let (user, password) = ((outbox.var)(user).unwrap_or_default(), (outbox.var)(password).unwrap_or_default());
        builder = builder.credentials(Credentials::new(user, password));
    }
    let transport = builder.build();
    let mut attempts = 0;
    let mut pause = Duration::from_millis(200);
    loop {
        attempts += 1;
        match transport.send(&email) {
            Ok(response) => {
                let code = response.code().to_string().parse::<u16>().ok();
                return Attempt { status: code, attempts, error: None, deployment: None };
            }
            Err(e) => {
                let status = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
                // A permanent refusal (5xx) will not change; anything else may.
                let retry = !e.is_permanent() && attempts <= channel.retries;
                if !retry {
                    let words = redact.clean(&format!("{host}:{port}: {}", chain(&e)));
                    return Attempt { status, attempts, error: Some(words), deployment: None };
                }
                std::thread::sleep(pause);
                pause *= 2;
            }
        }
    }
}

/// An error with its causes, on one line (lettre's own message is short).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

fn build(from: &str, to: &[String], message: &Message, body: &MailBody, id: &str) -> Result<lettre::Message, String> {
    let parse = |a: &str| a.parse::<Mailbox>().map_err(|e| format!("`{a}` is not a mail address: {e}"));
    let mut builder = lettre::Message::builder()
        .from(parse(from)?)
        .subject(format!("[cairn] {}", message.title))
        .message_id(Some(format!("<{id}@cairn>")));
    for address in to {
        builder = builder.to(parse(address)?);
    }
    let text = format!("{}\n\n{}", super::message::plain(message), body.markdown);
    builder
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(body.html.clone())),
        )
        .map_err(|e| format!("the mail could not be built: {e}"))
}
