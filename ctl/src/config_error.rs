//! The error a configuration file loader returns: the file and every problem found in it.

use std::fmt;

/// A configuration error. `Display` names the file and the problem(s).
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// One line per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
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

impl std::error::Error for ConfigError {}
