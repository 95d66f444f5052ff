//! The `cairn` binary: parse arguments, run the library, map the outcome to the exit code
//! contract (0 success, 1 findings, 2 error, 3 changes with --detailed-exitcode).

use std::io::Write;
use std::process::ExitCode;

use cairn::cli::{Cli, run};
use clap::Parser;

/// Rendering and validating large environments allocates and frees millions of small values;
/// mimalloc does that several times faster than the system allocator. It is built without
/// transparent huge pages (the `no_thp` feature): a short-lived command would otherwise fault in
/// and zero 2 MiB at a time, which measured as most of the system time of a `validate` with a
/// policy bound (0.35 s of 0.7 s; 0.07 s without).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = run(&cli, &mut out).and_then(|status| {
        out.flush().map_err(|e| cairn::Error::Io {
            path: "<stdout>".into(),
            action: "cannot write results",
            source: e,
        })?;
        Ok(status)
    });
    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(cairn::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            // The reader went away (`cairn render | head`): nothing left to say.
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = out.flush();
            #[allow(clippy::disallowed_macros)] // The one place that prints an error for people.
            {
                eprintln!("error: {}", e.chain());
            }
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr. At default verbosity only cairn's own warnings appear: a dependency's logs
/// (the Kubernetes client reports every failed request itself, hundreds of lines when a server
/// goes away) would bury the one error cairn prints. `-v` adds cairn's progress and dependencies'
/// warnings and errors, `-vv` everything at debug. Colour only on a terminal.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "off,cairn=warn",
        1 => "warn,cairn=info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// A bug must still end as one line on stderr and exit code 2, without a backtrace and without
/// the panic's payload (which could quote configuration values).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        #[allow(clippy::disallowed_macros)] // The one place that prints an error for people.
        {
            eprintln!("error: internal error{location}; this is a bug in cairn, please report it");
        }
        std::process::exit(2);
    }));
}
