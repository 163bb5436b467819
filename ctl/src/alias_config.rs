//! clu_alias.config(4): a member's boot-time list of cluamgr command lines, e.g.
//!
//! ```text
//! /usr/sbin/cluamgr -a alias=DEFAULTALIAS,selw=3,selp=1,join
//! /usr/sbin/cluamgr -a alias=gourmet,join,selw=50
//! /usr/sbin/cluamgr -a alias=mailfeed,rpri=100
//! ```
//!
//! Each non-blank line, after `#` comments are removed, is the program (`cluamgr`, or any path
//! ending in `/cluamgr`) followed by its arguments. Arguments are split on spaces and tabs; there
//! is no shell quoting, escaping or variable expansion (cluamgr's arguments never need it), so a
//! quote character is an ordinary character. The arguments are parsed by
//! [`parse_args`](crate::command::parse_args). Only commands that set state make sense at boot:
//! `-a`, `-r`, `-f`, `-F` and `--register`; `-s` and `-h` lines are errors.
//!
//! [`parse_alias_config`] reports every bad line at once, each as `FILE:LINE: what`.

use std::fmt;

use crate::line_error::{LineError, LineErrors};

use crate::command::{parse_args, Command, CommandError};

/// What is wrong with one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AliasConfigErrorKind {
    /// The line does not start with cluamgr.
    NotCluamgr {
        /// The first word.
        program: String,
    },
    /// The arguments are not a cluamgr command.
    Command(CommandError),
    /// A command that only reads or prints (`-s`, `-h`).
    NotBootTime {
        /// Its flag.
        flag: &'static str,
    },
}

impl fmt::Display for AliasConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotCluamgr { program } => write!(
                f,
                "`{program}` is not cluamgr (each line is `cluamgr ARGS` or `/path/to/cluamgr ARGS`)"
            ),
            Self::Command(e) => e.fmt(f),
            Self::NotBootTime { flag } => write!(
                f,
                "cluamgr {flag} is not a boot-time command (only -a, -r, -f, -F and --register)"
            ),
        }
    }
}

/// One problem, where it is.
pub type AliasConfigError = LineError<AliasConfigErrorKind>;

/// Every problem found in a file, in line order. Displays one per line.
pub type AliasConfigErrors = LineErrors<AliasConfigErrorKind>;

fn is_cluamgr(program: &str) -> bool {
    program == "cluamgr" || program.ends_with("/cluamgr")
}

/// Parses a clu_alias.config file into its commands with their 1-based line numbers, in file
/// order, or returns every bad line. `file` is used only in error messages.
pub fn parse_alias_config(
    text: &str,
    file: &str,
) -> Result<Vec<(usize, Command)>, AliasConfigErrors> {
    let mut cmds = Vec::new();
    let mut errs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.split_once('#').map_or(raw, |(c, _)| c);
        let mut words = content.split([' ', '\t', '\r']).filter(|w| !w.is_empty());
        let Some(program) = words.next() else {
            continue;
        };
        let what = if !is_cluamgr(program) {
            AliasConfigErrorKind::NotCluamgr {
                program: program.to_string(),
            }
        } else {
            match parse_args(words) {
                Ok(
                    c @ (Command::Show(_)
                    | Command::Help
                    | Command::Simulate(_)
                    | Command::Capture(_)
                    | Command::Reload),
                ) => AliasConfigErrorKind::NotBootTime { flag: c.flag() },
                Ok(c) => {
                    cmds.push((line, c));
                    continue;
                }
                Err(e) => AliasConfigErrorKind::Command(e),
            }
        };
        errs.push(AliasConfigError {
            file: file.to_string(),
            line,
            what,
        });
    }
    if errs.is_empty() {
        Ok(cmds)
    } else {
        Err(LineErrors(errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{AliasOptions, AliasRef};
    use crate::model::Proto;

    #[test]
    fn seed_readme_lines() {
        let text = "\
# clu_alias.config for member m1
/usr/sbin/cluamgr -a alias=DEFAULTALIAS,selw=3,selp=1,join

/usr/sbin/cluamgr -a alias=gourmet,join,selw=50
\t/usr/sbin/cluamgr  -a   alias=mailfeed,rpri=100   # ARP for mailfeed
cluamgr -r resvok
cluamgr -f
/opt/clua/bin/cluamgr -F /etc/clua_services.local
cluamgr --register 7001/udp,in_multi
";
        let got = parse_alias_config(text, "clu_alias.config").unwrap();
        let lines: Vec<usize> = got.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 4, 5, 6, 7, 8, 9]);
        assert_eq!(
            got[0].1,
            Command::Alias {
                alias: AliasRef::Default,
                options: AliasOptions {
                    join: true,
                    selw: Some(3),
                    selp: Some(1),
                    ..Default::default()
                },
                member: None,
            }
        );
        assert_eq!(
            got[1].1,
            Command::Alias {
                alias: AliasRef::Name("gourmet".into()),
                options: AliasOptions {
                    join: true,
                    selw: Some(50),
                    ..Default::default()
                },
                member: None,
            }
        );
        assert_eq!(
            got[2].1,
            Command::Alias {
                alias: AliasRef::Name("mailfeed".into()),
                options: AliasOptions {
                    rpri: Some(100),
                    ..Default::default()
                },
                member: None,
            }
        );
        assert_eq!(got[3].1, Command::Router { resvok: Some(true) });
        assert_eq!(got[4].1, Command::ReloadServices);
        assert_eq!(
            got[5].1,
            Command::LoadServices {
                path: "/etc/clua_services.local".into()
            }
        );
        assert!(matches!(
            got[6].1,
            Command::Register {
                port: 7001,
                proto: Proto::Udp,
                ..
            }
        ));
    }

    #[test]
    fn empty_file_is_no_commands() {
        assert_eq!(parse_alias_config("", "f").unwrap(), vec![]);
        assert_eq!(parse_alias_config("# only\n\n  \n", "f").unwrap(), vec![]);
    }

    /// Issue 11: `simulate` answers a question; it configures nothing at boot.
    #[test]
    fn simulate_is_not_a_boot_time_command() {
        let e = parse_alias_config(
            "cluamgr simulate tcp 203.0.113.7:40000 198.51.100.100:80\n",
            "/etc/clu_alias.config",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/clu_alias.config:1: cluamgr simulate is not a boot-time command (only -a, -r, -f, -F and --register)"
        );
        // Nor `--reload` (a boot is a load of the file already).
        let e = parse_alias_config("cluamgr --reload\n", "c").unwrap_err();
        assert!(
            e.to_string()
                .contains("--reload is not a boot-time command"),
            "{e}"
        );
    }

    #[test]
    fn every_bad_line_is_reported() {
        let text = "\
/usr/sbin/cluamgr -a alias=DEFAULTALIAS,join
/usr/sbin/cluamgrx -a alias=x,join
/usr/sbin/cluamgr -s all
cluamgr -h
/usr/sbin/cluamgr -a alias=gourmet,join,selw=500
/usr/sbin/cluamgr
ifconfig eth0 up
cluamgr -a alias=x,join,leave
cluamgr -a \"alias=x,join\"
/usr/sbin/cluamgr -a alias=mailfeed,rpri=100
";
        let e = parse_alias_config(text, "/etc/clu_alias.config").unwrap_err();
        assert_eq!(
            e.to_string(),
            "\
/etc/clu_alias.config:2: `/usr/sbin/cluamgrx` is not cluamgr (each line is `cluamgr ARGS` or `/path/to/cluamgr ARGS`)
/etc/clu_alias.config:3: cluamgr -s is not a boot-time command (only -a, -r, -f, -F and --register)
/etc/clu_alias.config:4: cluamgr -h is not a boot-time command (only -a, -r, -f, -F and --register)
/etc/clu_alias.config:5: selw=500 is out of range 1..=100
/etc/clu_alias.config:6: no command given (one of -a, -f, -F, -h, -r, -s, --register; -h for help)
/etc/clu_alias.config:7: `ifconfig` is not cluamgr (each line is `cluamgr ARGS` or `/path/to/cluamgr ARGS`)
/etc/clu_alias.config:8: join and leave are mutually exclusive
/etc/clu_alias.config:9: unknown -a option `\"alias` (expected alias, join, leave, selw, selp, rpri, virtual, mask or vmac)"
        );
        assert_eq!(
            e.0.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![2, 3, 4, 5, 6, 7, 8, 9]
        );
        assert_eq!(
            e.0[3].what,
            AliasConfigErrorKind::Command(CommandError::OutOfRange {
                option: "selw",
                value: "500".into(),
                min: 1,
                max: 100
            })
        );
    }
}
