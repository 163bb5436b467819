//! "FILE:LINE: what" errors for the line-oriented files (clua_services, clu_alias.config), and
//! the list of every one found in a file.

use std::fmt;

/// One problem on one line of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError<K> {
    /// The file name as given.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub what: K,
}

impl<K: fmt::Display> fmt::Display for LineError<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

impl<K: fmt::Display + fmt::Debug> std::error::Error for LineError<K> {}

/// Every problem found in a file, in line order. Displays one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineErrors<K>(pub Vec<LineError<K>>);

impl<K: fmt::Display> fmt::Display for LineErrors<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            e.fmt(f)?;
        }
        Ok(())
    }
}

impl<K: fmt::Display + fmt::Debug> std::error::Error for LineErrors<K> {}
