//! [`Error`]: what herdcache itself can fail with. (The check that a
//! function with `hard_timeout` or `circuit_breaker` can turn it into its
//! own error type is in `probe/timeout.rs`.)

use std::fmt;

/// A failure of herdcache's own, converted into the cached function's error
/// type with `From`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The load did not finish within the function's `hard_timeout`, and no
    /// fail-safe fallback was there to answer. The load goes on in the
    /// background and stores its value when it lands.
    Timeout,
    /// The function's circuit breaker is open (or half-open with its one
    /// probe running): the origin was not called. Fail-safe answers it
    /// with the last good value, as any failure.
    OriginUnavailable,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str("the load did not finish within its hard_timeout"),
            Error::OriginUnavailable => {
                f.write_str("the origin's circuit breaker is open: the load was not sent")
            }
        }
    }
}

impl std::error::Error for Error {}

/// A timed-out load is an `io::Error` of kind `TimedOut`; a load the
/// breaker refused, of kind `ConnectionRefused`.
impl From<Error> for std::io::Error {
    fn from(error: Error) -> Self {
        let kind = match error {
            Error::Timeout => std::io::ErrorKind::TimedOut,
            Error::OriginUnavailable => std::io::ErrorKind::ConnectionRefused,
        };
        std::io::Error::new(kind, error)
    }
}
