//! The error a configuration file loader returns: the file and every problem found in it.

use std::fmt;

/// A configuration error: the file and every problem found in it. `Display` shows one problem
/// per line, `FILE: PROBLEM`. Each loader has its own typed problem, a field and a kind:
/// `clua_lb::config::Problem` for aliasd, `clua_member::config::Problem` for the member agent.
#[derive(Debug)]
pub struct ConfigError<P> {
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
