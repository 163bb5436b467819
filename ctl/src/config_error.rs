//! The error a configuration file loader returns: the file and every problem found in it.

use std::fmt;

/// A configuration error: the file and every problem found in it. `Display` shows one problem
/// per line, `FILE: PROBLEM`. aliasd's problems are typed (`clua_lb::config::Problem`, a field
/// and a kind); the parameter's default, text, is what the member agent's configuration still
/// uses (member/src/config.rs).
#[derive(Debug)]
pub struct ConfigError<P = String> {
    /// The file.
    pub file: String,
    /// Every problem, in the order found.
    pub problems: Vec<P>,
}

impl<P: fmt::Display> fmt::Display for ConfigError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", self.file, p)?;
        }
        Ok(())
    }
}

impl<P: fmt::Display + fmt::Debug> std::error::Error for ConfigError<P> {}
