//! `cluamgr`: the cluster alias manager (cluamgr(8)), talking to the local aliasd.
//!
//! ```text
//! cluamgr [--socket PATH] -a alias=NAME,option[=value][,option]... [--member NAME]
//! cluamgr [--socket PATH] {-f | -F FILE} | -r option[,option]... | -s [ALIAS|all] [--json] | -h
//! cluamgr [--socket PATH] --reload     re-read aliasd.toml (as SIGHUP does)
//! cluamgr -F FILE --check          validate a clua_services file without aliasd
//! cluamgr [--socket PATH] simulate tcp|udp SRC:PORT ALIAS:PORT [--syn|--ack] [--json]
//! cluamgr [--socket PATH] capture PORT [--rx] [--tx] [--drop] [--all] [-c N] [--seconds S]
//!         [-s SNAPLEN] [-w FILE|-] [--json]
//! ```
//! Exit status: 0 done, 1 refused by aliasd (nothing changed) or invalid file, 2 usage error or
//! aliasd unreachable.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use clua_ctl::capture::{decode, render_summary, CaptureReply, CaptureRequest};
use clua_ctl::command::{
    from_clap, refuse_clusters, resolve_hosts, AliasRef, Command, CommandArgs, CommandError,
    Invocation, ShowWhat, USAGE,
};
use clua_ctl::protocol::{call, Request, DEFAULT_SOCKET};
use clua_ctl::services::{parse_services, render_table};

const EXTRA_USAGE: &str = "\
clua options:
  --socket PATH     aliasd's control socket (default /run/clua/aliasd.sock)
  --check           with -F FILE: validate the file and print its table; aliasd is not contacted
";

/// cluamgr's argv: the command grammar of `clua_ctl::command` plus the CLI's own `--socket`.
#[derive(Parser, Debug)]
#[command(
    name = "cluamgr",
    disable_help_flag = true,
    disable_version_flag = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    /// aliasd's control socket.
    #[arg(long = "socket", value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(flatten)]
    command: CommandArgs,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if let Err(e) = refuse_clusters(&argv[1.min(argv.len())..]) {
        return usage_error(&e.to_string());
    }
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::{ContextKind, ContextValue, ErrorKind};
            let socket_without_path = e.kind() == ErrorKind::InvalidValue
                && matches!(e.get(ContextKind::InvalidArg),
                    Some(ContextValue::String(a)) if a.starts_with("--socket"));
            if socket_without_path {
                return usage_error("--socket needs a path");
            }
            return usage_error(&from_clap(&e).to_string());
        }
    };
    let socket = cli.socket;
    let (command, check, json) = match cli.command.into_invocation() {
        Ok(Invocation {
            command,
            check,
            json,
        }) => (command, check, json),
        Err(CommandError::CheckMisplaced) => return usage_error("--check goes with -F FILE"),
        Err(CommandError::JsonMisplaced) => {
            return usage_error("--json goes with -s and simulate (the read commands)")
        }
        Err(e) => return usage_error(&e.to_string()),
    };
    let command = match command {
        Command::Help => {
            print!("{USAGE}\n{EXTRA_USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::LoadServices { path } if check => {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("cluamgr: {path}: cannot read: {e}");
                    return ExitCode::from(1);
                }
            };
            return match parse_services(&text, &path) {
                Ok(services) => {
                    print!("{}", render_table(&services));
                    println!("{path}: {} services, ok", services.len());
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::from(1)
                }
            };
        }
        Command::LoadServices { path } => match std::path::absolute(&path) {
            Ok(p) => Command::LoadServices {
                path: p.display().to_string(),
            },
            Err(e) => return usage_error(&format!("{path}: {e}")),
        },
        Command::Alias {
            alias,
            options,
            member,
        } => Command::Alias {
            alias: resolve(alias),
            options,
            member,
        },
        Command::Show(ShowWhat::Alias(a)) => Command::Show(ShowWhat::Alias(resolve(a))),
        Command::Capture(req) => return capture(&socket, req),
        other => other,
    };
    // A reload re-reads and re-validates the whole file (and the files it names): give it
    // longer than a command.
    let timeout = Duration::from_secs(if command == Command::Reload { 30 } else { 10 });
    match call(&socket, &Request { command, json }, timeout) {
        Ok(reply) => {
            if reply.ok {
                println!("{}", reply.output.trim_end());
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "cluamgr: refused, nothing changed:\n{}",
                    reply.output.trim_end()
                );
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("cluamgr: cannot reach aliasd at {}: {e}", socket.display());
            ExitCode::from(2)
        }
    }
}

/// `capture`: aliasd answers when the capture ends, with the file, which cluamgr (the caller,
/// in its working directory, as its user) writes.
fn capture(socket: &std::path::Path, req: CaptureRequest) -> ExitCode {
    // The file is opened first: a path that cannot be written fails before capturing.
    let mut out: Box<dyn Write> = if req.file == "-" {
        Box::new(std::io::stdout())
    } else {
        match std::fs::File::create(&req.file) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("cluamgr: {}: cannot write: {e}", req.file);
                return ExitCode::from(1);
            }
        }
    };
    let json = req.json;
    let to_stdout = req.file == "-";
    let wait = Duration::from_secs(u64::from(req.seconds) + 30);
    let reply = match call(
        socket,
        &Request {
            command: Command::Capture(req.clone()),
            json: false,
        },
        wait,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cluamgr: cannot reach aliasd at {}: {e}", socket.display());
            discard(&req.file);
            return ExitCode::from(2);
        }
    };
    if !reply.ok {
        discard(&req.file);
        eprintln!(
            "cluamgr: refused, nothing captured:\n{}",
            reply.output.trim_end()
        );
        return ExitCode::from(1);
    }
    let parsed: Result<CaptureReply, _> = serde_json::from_str(&reply.output);
    let Ok(CaptureReply { summary, pcapng }) = parsed else {
        eprintln!("cluamgr: aliasd's capture reply is not understood (versions differ?)");
        return ExitCode::from(1);
    };
    let bytes = match decode(&pcapng) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cluamgr: aliasd's capture file is not base64: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = out.write_all(&bytes).and_then(|()| out.flush()) {
        eprintln!("cluamgr: {}: {e}", req.file);
        return ExitCode::from(1);
    }
    // With the file on standard output, the summary goes to standard error.
    let text = if json {
        serde_json::to_string(&summary).unwrap_or_default() + "\n"
    } else {
        render_summary(&summary)
    };
    if to_stdout {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    ExitCode::SUCCESS
}

/// Removes the file opened for a capture that did not happen.
fn discard(file: &str) {
    if file != "-" {
        let _ = std::fs::remove_file(file);
    }
}

/// A hostname alias is looked up in /etc/hosts, as cluamgr(8) does; an unknown name is sent
/// as a name (aliasd matches it against its configured alias names).
fn resolve(alias: AliasRef) -> AliasRef {
    if let AliasRef::Name(_) = &alias {
        if let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
            if let Some(addr) = resolve_hosts(&alias, &hosts) {
                return AliasRef::Addr(addr);
            }
        }
    }
    alias
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("cluamgr: {msg}\n(cluamgr -h for usage)");
    ExitCode::from(2)
}
