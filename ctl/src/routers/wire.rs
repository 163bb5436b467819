//! The router protocol message (in progress).
