//! The library's error type. Every variant is bad input or a failed operation, so every variant
//! maps to exit code 2; findings (exit 1) and changes (exit 3) are data, not errors.

use std::path::PathBuf;

/// Errors that stop a command. Messages are one line and name the place (file:line:column where
/// there is one) and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: not a git repository (run `git init` there, or pass --repo DIR)")]
    NotARepository { path: PathBuf },

    #[error("unknown revision `{rev}`: {reason}")]
    UnknownRevision { rev: String, reason: String },

    #[error("{path}: the repository has no commits yet; commit first or omit --rev")]
    NoCommits { path: PathBuf },

    /// The git object database or work tree could not be read; the cause says what git said.
    #[error("git")]
    Git {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// `cairn init` could not make the repository's first commit.
    #[error("{dir}: cannot initialise the git repository")]
    Scaffold {
        dir: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("{file}:{line}:{column}: {message}")]
    Yaml { file: String, line: u64, column: u64, message: String },

    #[error("{file}:{line}: {message}")]
    Document { file: String, line: u64, message: String },

    #[error("{message}")]
    Config { message: String },

    /// A verification check that cannot run at all (a query the server rejects, a variable that
    /// is unset): not a failed measurement, a broken check.
    #[error("check `{check}`: {message}")]
    Verify { check: String, message: String },

    #[error("unknown environment `{name}` (environments in cairn.yaml: {known})")]
    UnknownEnvironment { name: String, known: String },

    #[error(
        "environment `{environment}`: layer `{layer}` does not exist (cairn.yaml:{line}); create it or remove it from `layers`"
    )]
    MissingLayer { environment: String, layer: String, line: u64 },

    #[error(
        "{second}:{second_line}: object {object} is defined twice in layer `{layer}` (first at {first}:{first_line}); remove one or move it to another layer"
    )]
    DuplicateObject { object: String, layer: String, first: String, first_line: u64, second: String, second_line: u64 },

    #[error("{path}: {action}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A work-tree path that is, or passes through, a symbolic link resolving outside the git
    /// work tree; nothing behind it is read.
    #[error(
        "{path}: a symbolic link to {points_to}, outside the repository; cairn reads only files inside it (replace the link with the file)"
    )]
    SymlinkOutside { path: String, points_to: PathBuf },

    /// A work-tree symbolic link into git's own directory (`.git/config` may hold a CI token).
    #[error(
        "{path}: a symbolic link to {points_to}, inside git's own directory; cairn reads only the repository's files (replace the link with the file)"
    )]
    SymlinkIntoGitDir { path: String, points_to: PathBuf },

    /// A work-tree symbolic link that never reaches a file: a loop (the source says which kind),
    /// or more links in a row than the system follows.
    #[error(
        "{path}: a symbolic link to {points_to} that loops and never reaches a file; replace the link with the file"
    )]
    SymlinkLoop {
        path: String,
        points_to: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A symbolic link committed to git, met when reading a revision: it is not followed.
    #[error(
        "{path}: a symbolic link in git (to {points_to}); with --rev cairn reads only regular files (commit the file itself instead)"
    )]
    SymlinkInRevision { path: String, points_to: String },

    #[error("environment `{environment}` is locked by {holder}; wait for that apply to finish (the lock is {path})")]
    Locked { environment: String, holder: String, path: PathBuf },

    #[error("{path}: corrupt state file: {message}; remove or restore it")]
    CorruptState { path: PathBuf, message: String },

    #[error("{message}")]
    Usage { message: String },

    #[error(
        "notification channel `{channel}` needs the environment variable `{variable}`, which is not set; set it in the job's environment (from the CI system's secrets)"
    )]
    Unset { channel: String, variable: String },

    /// A request to a Kubernetes API server failed: which context, about what, and (the cause)
    /// what the server answered.
    #[error("kubernetes ({context}): {subject}")]
    Kubernetes {
        context: String,
        subject: String,
        #[source]
        source: ApiAnswer,
    },

    /// A saved plan (`check --out`) that cannot be used.
    #[error("{path}: {problem}")]
    SavedPlan {
        path: PathBuf,
        problem: String,
        #[source]
        source: Option<serde_json::Error>,
    },

    /// A secret file that cannot be read; the message never contains a plaintext value.
    #[error("policy `{policy}` ({plugin}): {message}")]
    Policy { policy: String, plugin: String, message: String },

    #[error("{file}: {message}")]
    Secret { file: String, message: String },

    /// A chart layer that cannot be rendered: the chart (its path or `URL/NAME@VERSION`), and
    /// what went wrong (helm's own message where helm said it, secrets redacted).
    #[error("chart {layer}: {message}")]
    Helm { layer: String, message: String },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), action, source }
    }
}

/// What a Kubernetes API server (or the connection to it) answered: the server's own message
/// with its code and reason, or the client's transport error. The client's error is kept for
/// callers that match on it.
#[derive(Debug)]
pub struct ApiAnswer(pub kube::Error);

impl std::fmt::Display for ApiAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            kube::Error::Api(status) => write!(f, "{} ({} {})", status.message, status.code, status.reason),
            other => {
                // The client nests its causes; one line with each once is what people need.
                let mut text = other.to_string();
                let mut cause = std::error::Error::source(other);
                while let Some(c) = cause {
                    let more = c.to_string();
                    if !text.contains(&more) {
                        text.push_str(": ");
                        text.push_str(&more);
                    }
                    cause = c.source();
                }
                f.write_str(&text)
            }
        }
    }
}

impl std::error::Error for ApiAnswer {}

impl Error {
    /// The message with its causes, each once: `base/x.yaml: cannot read: Permission denied`.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            let more = c.to_string();
            if !more.is_empty() && !text.contains(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            cause = c.source();
        }
        text
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
