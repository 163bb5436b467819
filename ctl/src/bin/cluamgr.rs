//! `cluamgr`: the cluster alias manager (cluamgr(8)), talking to the local aliasd.
//!
//! ```text
//! cluamgr [--socket PATH] -a alias=NAME,option[=value][,option]... [--member NAME]
//! cluamgr [--socket PATH] {-f | -F FILE} | -r option[,option]... | -s [ALIAS|all] | -h
//! cluamgr -F FILE --check          validate a clua_services file without aliasd
//! ```
//! Exit status: 0 done, 1 refused by aliasd (nothing changed) or invalid file, 2 usage error or
//! aliasd unreachable.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clua_ctl::command::{parse_args, resolve_hosts, AliasRef, Command, ShowWhat, USAGE};
use clua_ctl::protocol::{call, Request, DEFAULT_SOCKET};
use clua_ctl::services::{parse_services, render_table};

const EXTRA_USAGE: &str = "\
clua options:
  --socket PATH     aliasd's control socket (default /run/clua/aliasd.sock)
  --check           with -F FILE: validate the file and print its table; aliasd is not contacted
";

fn main() -> ExitCode {
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    let mut check = false;
    let mut rest = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--socket" {
            match args.next() {
                Some(p) => socket = PathBuf::from(p),
                None => return usage_error("--socket needs a path"),
            }
        } else if let Some(p) = a.strip_prefix("--socket=") {
            socket = PathBuf::from(p);
        } else if a == "--check" {
            check = true;
        } else {
            rest.push(a);
        }
    }
    let command = match parse_args(&rest) {
        Ok(c) => c,
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
        _ if check => return usage_error("--check goes with -F FILE"),
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
        other => other,
    };
    match call(&socket, &Request { command }, Duration::from_secs(10)) {
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
