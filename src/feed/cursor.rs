//! Feed cursors: opaque to clients, a sequence number inside.
//!
//! A cursor names the last entry a client has seen; the next read starts
//! after it. The text form carries a version so it can change later.

use std::fmt;

/// A position in the feed (the sequence number of the last entry seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(pub u64);

const PREFIX: &str = "1_";

impl Cursor {
    /// Reads a cursor given by a client; `None` if it is not one.
    pub fn parse(s: &str) -> Option<Cursor> {
        let digits = s.strip_prefix(PREFIX)?;
        if digits.is_empty() || digits.len() > 16 {
            return None;
        }
        u64::from_str_radix(digits, 16).ok().map(Cursor)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{:x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_and_garbage_is_refused() {
        for n in [0, 1, 255, u64::MAX] {
            assert_eq!(Cursor::parse(&Cursor(n).to_string()), Some(Cursor(n)));
        }
        for bad in [
            "",
            "1_",
            "12",
            "1_zz",
            "2_10",
            "1_-1",
            "1_10000000000000000",
            " 1_1",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
    }
}
