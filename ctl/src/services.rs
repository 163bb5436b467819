//! clua_services(4): the file that gives well-known ports their cluster-alias attributes
//! (seed 002; seed 000 §6.9).
//!
//! One entry a line: `ServiceName PortNumber/ProtocolName Options`. Fields are separated by
//! spaces or tabs; `#` starts a comment that runs to the end of the line; blank lines are
//! ignored. `Options` is a comma-separated list with no spaces inside it (`in_multi,out_alias`).
//! An entry without options is accepted and is in_single, as is any port the file does not list
//! (CA9: "in_single is the default alias attribute"). An in_multi entry may name one
//! load-balancing policy (issue 9; SC1–SC3): `wrr` (the default), `weighted`, `sticky` or
//! `wildcard_sticky` (docs/clua_services.md).
//!
//! [`parse_services`] reads a whole file and reports every problem in it at once, each as
//! `FILE:LINE: what`, so an administrator fixes the file in one pass.

use std::collections::HashMap;
use std::fmt;

use crate::line_error::{LineError, LineErrors};

use clua_pipeline::snapshot::Policy;

use crate::model::{Proto, ServiceOptionError, ServiceOptions, ServiceSpec};

/// What is wrong with one line of a clua_services file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServicesErrorKind {
    /// A service name with nothing after it.
    MissingPortProto {
        /// The service name.
        service: String,
    },
    /// More than three fields.
    ExtraField {
        /// The first extra field.
        field: String,
    },
    /// The second field is not `PortNumber/ProtocolName`.
    PortProto(PortProtoError),
    /// An option that clua_services(4) does not define.
    UnknownOption {
        /// The option as written.
        option: String,
        /// The model's error, listing the accepted options.
        message: ServiceOptionError,
    },
    /// An empty element in the option list (`in_multi,,static`, a trailing comma).
    EmptyOption,
    /// The same option twice in one entry.
    DuplicateOption {
        /// The option.
        option: String,
    },
    /// Options that exclude each other (CA9), with the model's message.
    Exclusive {
        /// E.g. `in_single and in_multi are mutually exclusive`.
        message: ServiceOptionError,
    },
    /// The port/protocol pair was already listed.
    DuplicateEntry {
        /// Port.
        port: u16,
        /// Protocol.
        proto: Proto,
        /// The line that listed it first.
        first_line: usize,
        /// The service name on that line.
        first_service: String,
    },
}

impl fmt::Display for ServicesErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingPortProto { service } => write!(
                f,
                "service `{service}` has no PortNumber/ProtocolName field (expected `{service} PORT/tcp|udp [OPTIONS]`)"
            ),
            Self::ExtraField { field } if field.starts_with(',') => write!(
                f,
                "extra field `{field}`: the option list must not contain spaces"
            ),
            Self::ExtraField { field } => write!(
                f,
                "extra field `{field}` (expected `ServiceName PortNumber/ProtocolName Options`; options are comma-separated without spaces)"
            ),
            Self::PortProto(e) => e.fmt(f),
            Self::UnknownOption { message, .. } => message.fmt(f),
            Self::EmptyOption => f.write_str(
                "empty option in the option list (two commas in a row, or a comma at either end)",
            ),
            Self::DuplicateOption { option } => write!(f, "option `{option}` is given twice"),
            Self::Exclusive { message } => message.fmt(f),
            Self::DuplicateEntry {
                port,
                proto,
                first_line,
                first_service,
            } => write!(
                f,
                "{port}/{} is already listed on line {first_line} (`{first_service}`)",
                proto.name()
            ),
        }
    }
}

/// One problem, where it is.
pub type ServicesError = LineError<ServicesErrorKind>;

/// Every problem found in a file, in line order. Displays one per line.
pub type ServicesErrors = LineErrors<ServicesErrorKind>;

/// Why a `PORT/PROTO` field is not one. Shared with cluamgr's `--register`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortProtoError {
    /// No `/`.
    NoSlash {
        /// The field.
        field: String,
    },
    /// The port is not a decimal number.
    NotANumber {
        /// The port as written.
        port: String,
    },
    /// Port 0.
    PortZero,
    /// Above 65535.
    PortTooLarge {
        /// The port as written.
        port: String,
    },
    /// Not `tcp` or `udp`.
    Protocol {
        /// The protocol as written.
        proto: String,
    },
}

impl fmt::Display for PortProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSlash { field } => {
                write!(f, "`{field}` is not PortNumber/ProtocolName (e.g. `7/tcp`)")
            }
            Self::NotANumber { port } => {
                write!(f, "port `{port}` is not a number (expected 1..=65535)")
            }
            Self::PortZero => f.write_str("port 0 is not a service port (expected 1..=65535)"),
            Self::PortTooLarge { port } => {
                write!(f, "port {port} is out of range 1..=65535")
            }
            Self::Protocol { proto } => {
                write!(f, "protocol `{proto}` is not supported (only tcp and udp)")
            }
        }
    }
}

impl std::error::Error for PortProtoError {}

/// Parses `7/tcp`. The protocol is `tcp` or `udp`, lower case as in /etc/services.
pub fn parse_port_proto(field: &str) -> Result<(u16, Proto), PortProtoError> {
    let (p, proto) = field
        .split_once('/')
        .ok_or_else(|| PortProtoError::NoSlash {
            field: field.to_string(),
        })?;
    let port = parse_port(p);
    let proto = match proto {
        "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        other => Err(PortProtoError::Protocol {
            proto: other.to_string(),
        }),
    };
    Ok((port?, proto?))
}

fn parse_port(p: &str) -> Result<u16, PortProtoError> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortProtoError::NotANumber {
            port: p.to_string(),
        });
    }
    let digits = p.trim_start_matches('0');
    if digits.is_empty() {
        return Err(PortProtoError::PortZero);
    }
    match digits.parse::<u16>() {
        Ok(n) => Ok(n),
        Err(_) => Err(PortProtoError::PortTooLarge {
            port: p.to_string(),
        }),
    }
}

/// Parses a comma-separated option list into `ServiceOptions` (no spaces inside the list),
/// returning every problem in it: empty elements, unknown and repeated options, and CA9's
/// mutual exclusions (checked only when every word was understood).
pub fn parse_service_options(list: &str) -> Result<ServiceOptions, Vec<ServicesErrorKind>> {
    let mut opts = ServiceOptions::default();
    let mut errs = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut empty_reported = false;
    for word in list.split(',') {
        if word.is_empty() {
            if !empty_reported {
                errs.push(ServicesErrorKind::EmptyOption);
                empty_reported = true;
            }
            continue;
        }
        if seen.contains(&word) {
            errs.push(ServicesErrorKind::DuplicateOption {
                option: word.to_string(),
            });
            continue;
        }
        seen.push(word);
        if let Err(message) = opts.set(word) {
            errs.push(ServicesErrorKind::UnknownOption {
                option: word.to_string(),
                message,
            });
        }
    }
    if errs.is_empty() {
        if let Err(message) = opts.check() {
            errs.push(ServicesErrorKind::Exclusive { message });
        }
    }
    if errs.is_empty() {
        Ok(opts)
    } else {
        Err(errs)
    }
}

/// Parses a clua_services file. `file` is used only in error messages.
///
/// Returns the entries in file order, or every error found (each with its line).
pub fn parse_services(text: &str, file: &str) -> Result<Vec<ServiceSpec>, ServicesErrors> {
    let mut specs = Vec::new();
    let mut errs = Vec::new();
    // (port, proto) -> (line, service) of the first entry.
    let mut first: HashMap<(u16, Proto), (usize, String)> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut push = |what| {
            errs.push(ServicesError {
                file: file.to_string(),
                line,
                what,
            })
        };
        let content = raw.split_once('#').map_or(raw, |(c, _)| c);
        let mut fields = content.split([' ', '\t', '\r']).filter(|f| !f.is_empty());
        let Some(name) = fields.next() else { continue };
        let Some(pp) = fields.next() else {
            push(ServicesErrorKind::MissingPortProto {
                service: name.to_string(),
            });
            continue;
        };
        let options = fields.next();
        if let Some(extra) = fields.next() {
            push(ServicesErrorKind::ExtraField {
                field: extra.to_string(),
            });
        }
        let port_proto = parse_port_proto(pp);
        if let Err(e) = &port_proto {
            push(ServicesErrorKind::PortProto(e.clone()));
        }
        let opts = match options.map(parse_service_options) {
            None => Some(ServiceOptions::default()),
            Some(Ok(o)) => Some(o),
            Some(Err(kinds)) => {
                kinds.into_iter().for_each(&mut push);
                None
            }
        };
        let Ok((port, proto)) = port_proto else {
            continue;
        };
        if let Some((first_line, first_service)) = first.get(&(port, proto)) {
            push(ServicesErrorKind::DuplicateEntry {
                port,
                proto,
                first_line: *first_line,
                first_service: first_service.clone(),
            });
            continue;
        }
        first.insert((port, proto), (line, name.to_string()));
        if let Some(options) = opts {
            specs.push(ServiceSpec {
                name: name.to_string(),
                port,
                proto,
                options,
            });
        }
    }
    if errs.is_empty() {
        Ok(specs)
    } else {
        Err(LineErrors(errs))
    }
}

/// The options as they would be written in clua_services, in a fixed order, or `-` if none.
pub fn format_options(o: &ServiceOptions) -> String {
    let words: Vec<&str> = [
        (o.in_single, "in_single"),
        (o.in_multi, "in_multi"),
        (o.in_noalias, "in_noalias"),
        (o.in_nolocal, "in_nolocal"),
        (o.out_alias, "out_alias"),
        (o.static_port, "static"),
        (o.wrr, "wrr"),
        (o.weighted, "weighted"),
        (o.sticky, "sticky"),
        (o.wildcard_sticky, "wildcard_sticky"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, w)| *w)
    .collect();
    if words.is_empty() {
        "-".to_string()
    } else {
        words.join(",")
    }
}

/// The distribution mode clua applies: `in_multi`, `in_noalias`, `in_single`, or
/// `in_single (default)` when no distribution option was written.
pub fn effective_mode(o: &ServiceOptions) -> &'static str {
    if o.in_multi {
        "in_multi"
    } else if o.in_noalias {
        "in_noalias"
    } else if o.in_single {
        "in_single"
    } else {
        "in_single (default)"
    }
}

/// The load-balancing policy clua applies (issue 9; SC1–SC3): for in_multi `wrr`, `weighted`,
/// `sticky`, `wildcard_sticky`, or `wrr (default)` when none was written; `-` for other ports
/// (they have one active member, or none).
pub fn effective_policy(o: &ServiceOptions) -> &'static str {
    if !o.in_multi {
        return "-";
    }
    match o.policy() {
        Policy::Wrr if !o.wrr => "wrr (default)",
        p => p.name(),
    }
}

/// Renders entries as an aligned table with a header: service, port/proto, options, the
/// effective mode and policy. Every line ends in `\n`; columns are separated by at least two
/// spaces.
pub fn render_table(specs: &[ServiceSpec]) -> String {
    let rows: Vec<[String; 5]> = std::iter::once([
        "SERVICE".to_string(),
        "PORT/PROTO".to_string(),
        "OPTIONS".to_string(),
        "MODE".to_string(),
        "POLICY".to_string(),
    ])
    .chain(specs.iter().map(|s| {
        [
            s.name.clone(),
            format!("{}/{}", s.port, s.proto.name()),
            format_options(&s.options),
            effective_mode(&s.options).to_string(),
            effective_policy(&s.options).to_string(),
        ]
    }))
    .collect();
    let mut width = [0usize; 4];
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        for (c, w) in r.iter().zip(width.iter()) {
            out.push_str(&format!("{c:<0$}  ", w));
        }
        out.push_str(&r[4]);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The EXAMPLES file of clua_services(4) (seed 002) as it would really be on disk: the man
    /// page's `. . .` elisions left out, the Xserver comment block kept.
    pub(crate) const SEED_EXAMPLE: &str = "\
echo          7/tcp     in_multi
echo          7/udp     in_multi
discard       9/tcp     in_multi
discard       9/udp     in_multi
daytime       13/tcp    in_multi
daytime       13/udp    in_multi
netstat       15/tcp    in_single
quote         17/udp    in_multi
chargen       19/tcp    in_multi
chargen       19/udp    in_multi
ftp           21/tcp    in_multi
telnet        23/tcp    in_multi,out_alias
smtp          25/tcp    in_multi
time          37/tcp    in_multi
time          37/udp    in_multi
login         513/tcp   in_multi,out_alias,static
who           513/udp   in_noalias,static
# Xserver is the X Windows server port.  The following line lets a
# user on a workstation outside the cluster give display access to the
# default cluster alias using the xhost +<default_alias> command.
# Giving access to the cluster alias lets any cluster member display
# to that workstation.  If you prefer that users authorize each
# cluster member individually with the xhost command, comment out the
# following line.
Xserver\t6000/tcp\tout_alias,static\t# X Windows Server
";

    fn spec(name: &str, port: u16, proto: Proto, opts: &[&str]) -> ServiceSpec {
        let mut options = ServiceOptions::default();
        for o in opts {
            options.set(o).unwrap();
        }
        ServiceSpec {
            name: name.into(),
            port,
            proto,
            options,
        }
    }

    #[test]
    fn seed_002_example_file_parses_to_its_table() {
        use Proto::{Tcp, Udp};
        let got = parse_services(SEED_EXAMPLE, "clua_services").unwrap();
        let want = vec![
            spec("echo", 7, Tcp, &["in_multi"]),
            spec("echo", 7, Udp, &["in_multi"]),
            spec("discard", 9, Tcp, &["in_multi"]),
            spec("discard", 9, Udp, &["in_multi"]),
            spec("daytime", 13, Tcp, &["in_multi"]),
            spec("daytime", 13, Udp, &["in_multi"]),
            spec("netstat", 15, Tcp, &["in_single"]),
            spec("quote", 17, Udp, &["in_multi"]),
            spec("chargen", 19, Tcp, &["in_multi"]),
            spec("chargen", 19, Udp, &["in_multi"]),
            spec("ftp", 21, Tcp, &["in_multi"]),
            spec("telnet", 23, Tcp, &["in_multi", "out_alias"]),
            spec("smtp", 25, Tcp, &["in_multi"]),
            spec("time", 37, Tcp, &["in_multi"]),
            spec("time", 37, Udp, &["in_multi"]),
            spec("login", 513, Tcp, &["in_multi", "out_alias", "static"]),
            spec("who", 513, Udp, &["in_noalias", "static"]),
            spec("Xserver", 6000, Tcp, &["out_alias", "static"]),
        ];
        assert_eq!(got, want);
        // Seed 002: "both protocols using port 513 have the static attribute set".
        assert!(got
            .iter()
            .filter(|s| s.port == 513)
            .all(|s| s.options.static_port));
    }

    #[test]
    fn render_table_shows_effective_mode() {
        let specs = parse_services(SEED_EXAMPLE, "f").unwrap();
        let t = render_table(&specs);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 19);
        assert_eq!(
            lines[0],
            "SERVICE  PORT/PROTO  OPTIONS                    MODE                 POLICY"
        );
        assert_eq!(
            lines[1],
            "echo     7/tcp       in_multi                   in_multi             wrr (default)"
        );
        assert_eq!(
            lines[7],
            "netstat  15/tcp      in_single                  in_single            -"
        );
        assert_eq!(
            lines[16],
            "login    513/tcp     in_multi,out_alias,static  in_multi             wrr (default)"
        );
        assert_eq!(
            lines[17],
            "who      513/udp     in_noalias,static          in_noalias           -"
        );
        assert_eq!(
            lines[18],
            "Xserver  6000/tcp    out_alias,static           in_single (default)  -"
        );
    }

    /// Issue 9 (SC1–SC3): the policy options of in_multi ports, written back in a fixed order.
    #[test]
    fn policies_parse_and_render() {
        let text = "\
web    80/tcp   in_multi
api    81/tcp   in_multi,wrr
dns    53/udp   weighted,in_multi
shop   443/tcp  in_multi,sticky,out_alias
ftp    21/tcp   in_multi,wildcard_sticky
";
        let specs = parse_services(text, "f").unwrap();
        let policies: Vec<Policy> = specs.iter().map(|s| s.options.policy()).collect();
        assert_eq!(
            policies,
            [
                Policy::Wrr,
                Policy::Wrr,
                Policy::Weighted,
                Policy::Sticky,
                Policy::WildcardSticky
            ]
        );
        assert_eq!(format_options(&specs[2].options), "in_multi,weighted");
        assert_eq!(
            format_options(&specs[3].options),
            "in_multi,out_alias,sticky"
        );
        let t = render_table(&specs);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "SERVICE  PORT/PROTO  OPTIONS                    MODE      POLICY",
                "web      80/tcp      in_multi                   in_multi  wrr (default)",
                "api      81/tcp      in_multi,wrr               in_multi  wrr",
                "dns      53/udp      in_multi,weighted          in_multi  weighted",
                "shop     443/tcp     in_multi,out_alias,sticky  in_multi  sticky",
                "ftp      21/tcp      in_multi,wildcard_sticky   in_multi  wildcard_sticky",
            ]
        );
    }

    /// Issue 9: one policy per port, and only on in_multi ports; the message says what the
    /// port does instead.
    #[test]
    fn policy_errors() {
        assert_eq!(
            one_error("a 1/tcp in_multi,sticky,weighted\n"),
            "clua_services:1: weighted and sticky are mutually exclusive"
        );
        assert_eq!(
            one_error("a 1/tcp wildcard_sticky,in_multi,wrr\n"),
            "clua_services:1: wrr and wildcard_sticky are mutually exclusive"
        );
        assert_eq!(
            one_error("a 1/tcp sticky\n"),
            "clua_services:1: sticky is a policy of in_multi ports: a port without in_multi is in_single and sends every client to its one active member already (add in_multi)"
        );
        assert_eq!(
            one_error("a 1/tcp in_single,weighted\n"),
            "clua_services:1: weighted is a policy of in_multi ports: an in_single port sends every client to its one active member already (write in_multi instead of in_single)"
        );
        assert_eq!(
            one_error("a 1/udp in_noalias,wildcard_sticky\n"),
            "clua_services:1: wildcard_sticky is a policy of in_multi ports: an in_noalias port is refused on aliases, no member is chosen"
        );
        assert_eq!(
            one_error("a 1/tcp in_multi,sticky,sticky\n"),
            "clua_services:1: option `sticky` is given twice"
        );
        // The distribution modes are checked first.
        assert_eq!(
            one_error("a 1/tcp in_multi,in_single,sticky\n"),
            "clua_services:1: in_single and in_multi are mutually exclusive"
        );
    }

    #[test]
    fn entry_without_options_is_in_single() {
        let s = parse_services("myapp 7001/udp\n", "f").unwrap();
        assert_eq!(s, vec![spec("myapp", 7001, Proto::Udp, &[])]);
        assert_eq!(effective_mode(&s[0].options), "in_single (default)");
        assert_eq!(format_options(&s[0].options), "-");
    }

    #[test]
    fn comments_blank_lines_tabs_and_crlf() {
        let text = "\n   \n# all comment\n\tftp\t21/tcp\tin_multi # trailing\r\nx 1/udp#glued\n";
        let s = parse_services(text, "f").unwrap();
        assert_eq!(
            s,
            vec![
                spec("ftp", 21, Proto::Tcp, &["in_multi"]),
                spec("x", 1, Proto::Udp, &[]),
            ]
        );
    }

    fn one_error(text: &str) -> String {
        let e = parse_services(text, "clua_services").unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        e.to_string()
    }

    #[test]
    fn error_missing_field() {
        assert_eq!(
            one_error("# c\nfoo\n"),
            "clua_services:2: service `foo` has no PortNumber/ProtocolName field (expected `foo PORT/tcp|udp [OPTIONS]`)"
        );
    }

    #[test]
    fn error_extra_field() {
        assert_eq!(
            one_error("a 1/tcp in_multi static\n"),
            "clua_services:1: extra field `static` (expected `ServiceName PortNumber/ProtocolName Options`; options are comma-separated without spaces)"
        );
        assert_eq!(
            one_error("a 1/tcp in_multi ,static\n"),
            "clua_services:1: extra field `,static`: the option list must not contain spaces"
        );
    }

    #[test]
    fn error_port_proto() {
        assert_eq!(
            one_error("a 7\n"),
            "clua_services:1: `7` is not PortNumber/ProtocolName (e.g. `7/tcp`)"
        );
        assert_eq!(
            one_error("a 0/tcp\n"),
            "clua_services:1: port 0 is not a service port (expected 1..=65535)"
        );
        assert_eq!(
            one_error("a 65536/tcp\n"),
            "clua_services:1: port 65536 is out of range 1..=65535"
        );
        assert_eq!(
            one_error("a http/tcp\n"),
            "clua_services:1: port `http` is not a number (expected 1..=65535)"
        );
        assert_eq!(
            one_error("a -1/tcp\n"),
            "clua_services:1: port `-1` is not a number (expected 1..=65535)"
        );
        assert_eq!(
            one_error("a 80/sctp\n"),
            "clua_services:1: protocol `sctp` is not supported (only tcp and udp)"
        );
        assert_eq!(
            one_error("a 80/TCP\n"),
            "clua_services:1: protocol `TCP` is not supported (only tcp and udp)"
        );
        assert_eq!(parse_port_proto("65535/udp"), Ok((65535, Proto::Udp)));
        assert_eq!(parse_port_proto("0080/tcp"), Ok((80, Proto::Tcp)));
    }

    #[test]
    fn error_unknown_option() {
        assert_eq!(
            one_error("a 1/tcp in_multi,stickyy\n"),
            "clua_services:1: unknown service option `stickyy` (expected in_single, in_multi, in_noalias, in_nolocal, out_alias, static, wrr, weighted, sticky or wildcard_sticky)"
        );
    }

    #[test]
    fn error_empty_and_duplicate_option() {
        assert_eq!(
            one_error("a 1/tcp in_multi,,static\n"),
            "clua_services:1: empty option in the option list (two commas in a row, or a comma at either end)"
        );
        assert_eq!(
            one_error("a 1/tcp static,\n"),
            "clua_services:1: empty option in the option list (two commas in a row, or a comma at either end)"
        );
        assert_eq!(
            one_error("a 1/tcp static,static\n"),
            "clua_services:1: option `static` is given twice"
        );
    }

    #[test]
    fn error_mutually_exclusive() {
        assert_eq!(
            one_error("a 1/tcp in_multi,in_single\n"),
            "clua_services:1: in_single and in_multi are mutually exclusive"
        );
        assert_eq!(
            one_error("a 1/tcp in_noalias,in_multi\n"),
            "clua_services:1: in_multi and in_noalias are mutually exclusive"
        );
        assert_eq!(
            one_error("a 1/tcp in_nolocal,in_noalias\n"),
            "clua_services:1: in_nolocal and in_noalias are mutually exclusive"
        );
        // in_nolocal goes with in_multi or in_single.
        assert!(parse_services("a 1/tcp in_multi,in_nolocal\n", "f").is_ok());
    }

    #[test]
    fn error_duplicate_entry_names_first_line() {
        assert_eq!(
            one_error("echo 7/tcp in_multi\necho 7/udp in_multi\n\nping 7/tcp in_single\n"),
            "clua_services:4: 7/tcp is already listed on line 1 (`echo`)"
        );
    }

    #[test]
    fn all_errors_of_a_file_are_reported_together() {
        let text = "\
ok 1/tcp in_multi
bad 0/tcp
ok2 2/udp in_multi,in_single
x
ok 1/tcp
y 3/ftp in_foo
";
        let e = parse_services(text, "/etc/clua_services").unwrap_err();
        assert_eq!(
            e.to_string(),
            "\
/etc/clua_services:2: port 0 is not a service port (expected 1..=65535)
/etc/clua_services:3: in_single and in_multi are mutually exclusive
/etc/clua_services:4: service `x` has no PortNumber/ProtocolName field (expected `x PORT/tcp|udp [OPTIONS]`)
/etc/clua_services:5: 1/tcp is already listed on line 1 (`ok`)
/etc/clua_services:6: protocol `ftp` is not supported (only tcp and udp)
/etc/clua_services:6: unknown service option `in_foo` (expected in_single, in_multi, in_noalias, in_nolocal, out_alias, static, wrr, weighted, sticky or wildcard_sticky)"
        );
        assert_eq!(
            e.0.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![2, 3, 4, 5, 6, 6]
        );
    }
}
