//! Every command takes exactly the output formats it has an output of its own for: `--help` lists
//! them, clap refuses any other name with its usage error (exit 2) before the command runs, and
//! each format it takes prints something different from the others.
mod common;

use common::Fixture;

/// Every format name cairn knows, and a name it does not.
const NAMES: &[&str] = &[
    "human",
    "json",
    "markdown",
    "html",
    "sarif",
    "junit",
    "github",
    "yaml",
    "github-matrix",
    "gitlab-pipeline",
    "text",
];

/// A command with `--format`: its words, the arguments it needs besides, and the formats it
/// takes in the order `--help` lists them.
struct Command {
    words: &'static [&'static str],
    needs: Vec<String>,
    takes: &'static [&'static str],
}

impl Command {
    fn with_format(&self, name: &str) -> Vec<String> {
        let mut argv: Vec<String> = self.words.iter().map(ToString::to_string).collect();
        argv.extend(self.needs.iter().cloned());
        argv.extend(["--format".to_string(), name.to_string()]);
        argv
    }
}

fn commands(f: &Fixture) -> Vec<Command> {
    let repo = f.path().display().to_string();
    let new_repo = f.join("new-repo").display().to_string();
    let site = f.join("site").display().to_string();
    let table: [(&'static [&'static str], &[&str], &'static [&'static str]); 15] = [
        (&["init"], &[&new_repo], &["human", "json"]),
        (&["render"], &[], &["human", "json"]),
        (&["validate"], &[], &["human", "json", "markdown", "sarif", "junit", "github"]),
        (&["plan"], &[], &["human", "json", "markdown"]),
        (&["apply"], &["--env", "staging"], &["human", "json"]),
        (&["check"], &["--base", "HEAD"], &["markdown", "human", "json", "sarif", "junit", "github"]),
        (&["history"], &["--env", "staging"], &["human", "json", "markdown"]),
        (&["notes"], &["--env", "staging"], &["markdown", "html", "json"]),
        (&["status"], &[], &["human", "json", "markdown", "html"]),
        (&["rollback"], &["--env", "staging"], &["human", "json"]),
        (&["metrics"], &[], &["human", "json", "markdown", "html"]),
        (&["policy", "test"], &[&repo], &["human", "json", "markdown"]),
        (&["changes"], &["--base", "HEAD"], &["human", "json", "github-matrix", "gitlab-pipeline"]),
        (&["secrets", "decrypt"], &["secret.yaml"], &["yaml", "json"]),
        (&["site"], &["--out", &site], &["human", "json"]),
    ];
    table
        .into_iter()
        .map(|(words, needs, takes)| Command { words, needs: needs.iter().map(ToString::to_string).collect(), takes })
        .collect()
}

fn run(f: &Fixture, argv: &[String]) -> (i32, String, String) {
    f.run(&argv.iter().map(String::as_str).collect::<Vec<_>>())
}

fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn every_command_rejects_a_format_it_does_not_write_with_a_usage_error() {
    let f = Fixture::standard();
    for command in commands(&f) {
        let listed = format!("[possible values: {}]", command.takes.join(", "));
        for name in NAMES.iter().filter(|n| !command.takes.contains(n)) {
            let argv = command.with_format(name);
            let (code, out, err) = run(&f, &argv);
            assert_eq!(code, 2, "cairn {argv:?} exited {code}\nstdout:\n{out}\nstderr:\n{err}");
            assert_eq!(out, "", "cairn {argv:?} printed a result");
            assert!(err.contains(&format!("invalid value '{name}' for '--format <FORMAT>'")), "cairn {argv:?}:\n{err}");
            assert!(squeeze(&err).contains(&listed), "cairn {argv:?} lists {listed}:\n{err}");
            assert!(err.contains("For more information, try '--help'."), "cairn {argv:?}:\n{err}");
        }
    }
    assert!(!f.join("new-repo").exists(), "a refused `init` makes nothing");
    assert!(!f.join(".cairn").exists(), "a refused `apply` or `rollback` writes nothing");
}

#[test]
fn help_lists_exactly_the_formats_each_command_takes() {
    let f = Fixture::standard();
    for command in commands(&f) {
        let mut argv: Vec<&str> = command.words.to_vec();
        argv.push("--help");
        let help = squeeze(&f.ok(&argv, 0));
        // Exactly these, in this order: the list ends where the bracket closes.
        let listed = format!("[default: {}] [possible values: {}]", default(&command), command.takes.join(", "));
        let format = help.find("--format <FORMAT>").map(|at| &help[at..]).expect("a --format option");
        let values = format.find("[default: ").map(|at| &format[at..]).expect("a default");
        assert!(values.starts_with(&listed), "cairn {argv:?} lists `{listed}`:\n{help}");
    }
}

/// The default of each command's `--format`, as before there was one format type.
fn default(command: &Command) -> &'static str {
    match command.words {
        ["check"] | ["notes"] => "markdown",
        ["secrets", "decrypt"] => "yaml",
        _ => "human",
    }
}

/// Runs `args --format NAME` for each name and asserts each succeeds with output of its own.
fn assert_distinct(f: &Fixture, args: &[&str], names: &[&str], code: i32) {
    let mut seen: Vec<(&str, String)> = Vec::new();
    for name in names {
        let mut argv = args.to_vec();
        argv.extend(["--format", name]);
        let out = f.ok(&argv, code);
        if let Some((other, _)) = seen.iter().find(|(_, o)| *o == out) {
            panic!("cairn {args:?}: `{name}` prints what `{other}` prints:\n{out}");
        }
        seen.push((name, out));
    }
}

#[test]
fn each_format_a_command_takes_prints_something_of_its_own() {
    let f = Fixture::standard();
    let table = commands(&f);
    let takes = |words: &[&str]| table.iter().find(|c| c.words == words).map(|c| c.takes).expect("listed");
    for words in [&["render"][..], &["validate"], &["plan"], &["status"], &["metrics"]] {
        assert_distinct(&f, words, takes(words), 0);
    }
    assert_distinct(&f, &["history", "--env", "staging"], takes(&["history"]), 0);
    assert_distinct(&f, &["notes", "--env", "staging"], takes(&["notes"]), 0);
    assert_distinct(&f, &["changes", "--base", "HEAD"], takes(&["changes"]), 0);
    let site = f.join("site").display().to_string();
    assert_distinct(&f, &["site", "--out", &site], takes(&["site"]), 0);
    assert_distinct(&f, &["check", "--base", "HEAD"], takes(&["check"]), 0);
    // Each apply makes a release of its own, so compare what each format is, not the text.
    let human = f.ok(&["apply", "--env", "staging", "--format", "human"], 0);
    assert!(human.starts_with("staging: release 1 succeeded"), "{human}");
    let json = f.json(&["apply", "--env", "staging", "--format", "json"], 0);
    assert_eq!(json[0]["release"]["environment"], "staging", "{json}");
    let dir = f.join("made-human").display().to_string();
    let made = f.ok(&["init", &dir, "--format", "human"], 0);
    assert!(made.starts_with("Created a configuration repository"), "{made}");
    let dir = f.join("made-json").display().to_string();
    let made = f.json(&["init", &dir, "--format", "json"], 0);
    assert!(made["commit"].is_string(), "{made}");
}
