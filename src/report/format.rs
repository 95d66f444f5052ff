//! The one output format type. Which formats a command offers is the command line's business
//! (`cli::args`); a writer handed a format it has no output for says so instead of guessing.

use std::fmt;
use std::io;
use std::str::FromStr;

/// Every format cairn writes. No command writes all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// For people on a terminal (colour when asked for).
    Human,
    Json,
    Markdown,
    /// A standalone page.
    Html,
    /// SARIF 2.1.0, for code scanning.
    Sarif,
    /// JUnit XML, for test dashboards.
    Junit,
    /// GitHub Actions workflow commands (annotations).
    Github,
    Yaml,
    /// A GitHub Actions matrix (`{"include": [...]}`) of shards.
    GithubMatrix,
    /// A GitLab child-pipeline YAML with a job per shard.
    GitlabPipeline,
}

impl Format {
    pub const ALL: &'static [Format] = &[
        Format::Human,
        Format::Json,
        Format::Markdown,
        Format::Html,
        Format::Sarif,
        Format::Junit,
        Format::Github,
        Format::Yaml,
        Format::GithubMatrix,
        Format::GitlabPipeline,
    ];

    /// The name the command line takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Format::Human => "human",
            Format::Json => "json",
            Format::Markdown => "markdown",
            Format::Html => "html",
            Format::Sarif => "sarif",
            Format::Junit => "junit",
            Format::Github => "github",
            Format::Yaml => "yaml",
            Format::GithubMatrix => "github-matrix",
            Format::GitlabPipeline => "gitlab-pipeline",
        }
    }

    /// The error a writer returns for a format it has no output for. The command line only
    /// offers each command the formats its writers have, so this is a caller's mistake.
    pub(crate) fn unsupported(self, what: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{what} cannot be written as `{self}`"))
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not an output format")]
pub struct UnknownFormat {
    pub name: String,
}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Format, UnknownFormat> {
        Format::ALL.iter().copied().find(|f| f.as_str() == name).ok_or_else(|| UnknownFormat { name: name.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_parses_from_its_name() {
        for &format in Format::ALL {
            assert_eq!(format.as_str().parse::<Format>(), Ok(format));
            assert_eq!(format.to_string(), format.as_str());
        }
        assert_eq!("HTML".parse::<Format>(), Err(UnknownFormat { name: "HTML".to_string() }));
    }

    #[test]
    fn an_unsupported_format_is_invalid_input_naming_it() {
        let e = Format::Sarif.unsupported("release notes");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("`sarif`"), "{e}");
    }
}
