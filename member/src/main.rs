//! `clua-member`: the clua member agent.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use clua_member::config::MemberConfig;

/// The clua member agent: joins aliases, reports listening service ports and sends signed
/// adverts to the alias routers.
#[derive(Parser, Debug)]
#[command(name = "clua-member", version)]
struct Args {
    /// Configuration file (TOML, see docs/member.toml.md).
    #[arg(short, long)]
    config: PathBuf,
    /// Validate the configuration and exit (the boot counter is not touched).
    #[arg(long)]
    check: bool,
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
    let config = match MemberConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("clua-member: configuration rejected:\n{e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("{}: configuration ok", args.config.display());
        return ExitCode::SUCCESS;
    }
    match clua_member::agent::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clua-member: {e}");
            ExitCode::FAILURE
        }
    }
}
