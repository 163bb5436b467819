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

fn main() -> ExitCode {
    let args = Args::parse();
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
