//! The `taskledger` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

// glibc malloc spent a visible share of the write path in `malloc_consolidate`
// under group commit; mimalloc handles the many small, short-lived allocations of
// request handling and snapshot copy-on-write better.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use taskledger::config::{CliError, Cmd, Config, LogFormat};

/// mimalloc's defaults keep an arena's pages committed and purge freed ones
/// late: memory the start-up replay used stays resident for good (~50 MB of an
/// idle server's 80 MB). Committing on demand and purging at once returns it.
/// Option numbers of mimalloc's `mi_option_e` (stable across v2 and v3). Run
/// from `.init_array`, before the Rust runtime's first allocation reserves the
/// first arena (from `main` it would be too late for the commit option).
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

extern "C" fn tune_allocator() {
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: getenv before any thread exists (no allocation: an allocation
    // here would reserve the arena first); plain setters of process-wide
    // options. An explicit environment setting (read by mimalloc) wins.
    unsafe {
        let eager = nix::libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null();
        let purge = nix::libc::getenv(c"MIMALLOC_PURGE_DELAY".as_ptr()).is_null();
        if eager {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        }
        if purge {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        }
    }
}

/// `LOG_FORMAT=json`: one JSON object per line; otherwise text, coloured only
/// on a terminal (colour codes in a log file are noise).
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => fmt.with_ansi(std::io::stdout().is_terminal()).init(),
        LogFormat::Json => fmt.json().with_current_span(false).init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Panics become one log line, not a multi-line dump. sled panics on some damaged
/// files; the store catches those and reports the damage itself (exit 2 with
/// what to do), so they print nothing here.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| l.file().to_string())
            .unwrap_or_default();
        if at.contains("/sled-") {
            return;
        }
        let what = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        tracing::error!(at = %at, "panic: {what}");
    }));
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("taskledger: {msg}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let cli = match Config::parse_cli(std::env::args_os()) {
        Ok(cli) => cli,
        Err(CliError::Setting(e)) => return fail(2, e),
        Err(CliError::Clap(e)) => e.exit(),
    };
    let config = match Config::from_cli(&cli) {
        Ok(c) => c,
        Err(e) => return fail(2, e),
    };
    init_tracing(config.http.log_format);
    quiet_panics();
    match cli.command {
        None | Some(Cmd::Serve { .. }) | Some(Cmd::Replica) => serve(config),
        Some(cmd) => match taskledger::cli::offline(&config, cmd) {
            Ok(code) => ExitCode::from(code),
            Err(e) => fail(e.exit_code() as u8, e),
        },
    }
}

fn serve(config: Config) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the async runtime: {e}")),
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.http.addr).await {
            Ok(l) => l,
            Err(e) => {
                return fail(
                    2,
                    format!(
                        "invalid TASKLEDGER_ADDR (--addr): cannot listen on {}: {e}",
                        config.http.addr
                    ),
                )
            }
        };
        match taskledger::run(config, listener, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e.exit_code() as u8, e),
        }
    })
}
