//! `aliasd`: the clua alias router daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use clua_lb::config::Config;

/// The clua alias router: answers ARP for aliases and spreads their traffic over members.
#[derive(Parser, Debug)]
#[command(name = "aliasd", version)]
struct Args {
    /// Configuration file (TOML, see docs/aliasd.toml.md).
    #[arg(short, long)]
    config: PathBuf,
    /// Validate the configuration, print a summary and exit (like `nginx -t`).
    #[arg(long)]
    check: bool,
}

/// Control-plane events go to stderr, one line each. Under systemd (`JOURNAL_STREAM` set)
/// journald stamps the time itself, so the line carries none; `RUST_LOG` filters as usual.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// A panic anywhere (a worker, the control thread) ends the process, in every build profile:
/// a half-dead router that still holds its ports and its ARP mastership is worse than one that
/// is gone and restarted (systemd `Restart=`, docs/systemd.md). The release profile aborts on
/// panic anyway; the test profile unwinds, so this hook keeps the two alike.
fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::abort();
    }));
}

fn main() -> ExitCode {
    let args = Args::parse();
    abort_on_panic();
    init_logging();
    let config_path = args.config;
    let config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aliasd: configuration rejected:\n{e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        print!("{}", clua_lb::daemon::summary(&config));
        println!("{}: configuration ok", config_path.display());
        return ExitCode::SUCCESS;
    }
    match clua_lb::daemon::run_with_file(config, Some(config_path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aliasd: {e}");
            ExitCode::FAILURE
        }
    }
}
