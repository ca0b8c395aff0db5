//! LSNs and the text form of this source's positions.
//!
//! | text              | meaning                                                                   |
//! |-------------------|---------------------------------------------------------------------------|
//! | `0/16B3748:3`     | the 3rd event of the transaction whose commit record is at `0/16B3748`    |
//! | `0/16B37A0:0`     | everything before `0/16B37A0` (a commit's end, a keepalive's WAL end)     |
//! | `snapshot:0/16B3` | the initial snapshot of the slot whose consistent point is `0/16B3` runs   |
//! | `0/16B37A0:0#incremental={...}` | a stream position with a running incremental snapshot's progress |
//!
//! Order: every `snapshot:` position comes before every stream position; stream positions order by
//! LSN, then index. A transaction with commit LSN `C` and end `E` yields `(C,1) < … < (C,k) <
//! (E,0) <= (C',1)` for the next transaction `C'`, since a commit record starts after the previous
//! one ends.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use connector_core::{Error, ErrorKind, Position};

/// A PostgreSQL write-ahead log position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The invalid (zero) LSN.
    pub const ZERO: Lsn = Lsn(0);
}

impl fmt::Display for Lsn {
    /// PostgreSQL's `X/Y` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (hi, lo) = s.split_once('/').ok_or(())?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| ())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| ())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

/// A parsed position of this source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgPosition {
    /// The initial snapshot of the slot with this consistent point is in progress.
    Snapshot {
        /// The slot's consistent point (where streaming starts after the snapshot).
        consistent: Lsn,
    },
    /// A point in the stream: `index` 0 means "everything before `lsn`"; `index` n >= 1 means the
    /// n-th event of the transaction whose commit record is at `lsn`.
    Stream {
        /// Commit LSN (index >= 1) or the LSN everything before which is delivered (index 0).
        lsn: Lsn,
        /// Event index within the transaction, or 0.
        index: u64,
    },
}

impl PgPosition {
    /// A stream position.
    pub fn stream(lsn: Lsn, index: u64) -> Self {
        PgPosition::Stream { lsn, index }
    }

    /// Parse a stored position; errors say the position is not this source's. The progress of
    /// an incremental snapshot that rides behind the stream position
    /// ([`connector_core::incremental::progress::compose`]) is ignored here.
    pub fn parse(p: &Position) -> Result<Self, Error> {
        let s = p.as_str();
        let s = s
            .split_once(connector_core::incremental::progress::PROGRESS_SEPARATOR)
            .map_or(s, |(stream, _)| stream);
        let bad = || {
            Error::new(
                ErrorKind::Data,
                format!("stored position {s:?} is not a PostgreSQL source position"),
            )
            .with_hint(
                "expected `X/Y:N` or `snapshot:X/Y`; was the pipeline's source changed? \
                 Reset the pipeline's offsets to start over",
            )
        };
        if let Some(rest) = s.strip_prefix("snapshot:") {
            let consistent = rest.parse().map_err(|_| bad())?;
            return Ok(PgPosition::Snapshot { consistent });
        }
        let (lsn, index) = s.rsplit_once(':').ok_or_else(bad)?;
        Ok(PgPosition::Stream {
            lsn: lsn.parse().map_err(|_| bad())?,
            index: index.parse().map_err(|_| bad())?,
        })
    }

    /// The text form as a [`Position`].
    pub fn to_position(self) -> Position {
        Position::new(self.to_string())
    }
}

impl fmt::Display for PgPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgPosition::Snapshot { consistent } => write!(f, "snapshot:{consistent}"),
            PgPosition::Stream { lsn, index } => write!(f, "{lsn}:{index}"),
        }
    }
}

impl PartialOrd for PgPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PgPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        use PgPosition::*;
        match (self, other) {
            (Snapshot { consistent: a }, Snapshot { consistent: b }) => a.cmp(b),
            (Snapshot { .. }, Stream { .. }) => Ordering::Less,
            (Stream { .. }, Snapshot { .. }) => Ordering::Greater,
            (Stream { lsn: a, index: i }, Stream { lsn: b, index: j }) => (a, i).cmp(&(b, j)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips_in_postgres_form() {
        for text in ["0/0", "0/16B3748", "1A/FFFFFFFF"] {
            let lsn: Lsn = text.parse().unwrap();
            assert_eq!(lsn.to_string(), text);
        }
        assert_eq!("0/16B3748".parse::<Lsn>().unwrap().0, 0x16B3748);
        assert!("16B3748".parse::<Lsn>().is_err());
    }

    #[test]
    fn positions_round_trip_and_order() {
        let c = PgPosition::stream(Lsn(100), 1);
        let c2 = PgPosition::stream(Lsn(100), 2);
        let end = PgPosition::stream(Lsn(140), 0);
        let next = PgPosition::stream(Lsn(140), 1);
        let snap = PgPosition::Snapshot {
            consistent: Lsn(500),
        };
        assert!(snap < c && c < c2 && c2 < end && end < next);
        for p in [c, end, snap] {
            assert_eq!(PgPosition::parse(&p.to_position()).unwrap(), p);
        }
        assert_eq!(c.to_string(), "0/64:1");
        assert_eq!(snap.to_string(), "snapshot:0/1F4");
        let composed = Position::new(format!("{c}#incremental={{\"id\":\"x\"}}"));
        assert_eq!(PgPosition::parse(&composed).unwrap(), c);
        let e = PgPosition::parse(&Position::new("41")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Data);
    }
}
