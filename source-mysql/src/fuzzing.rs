//! Entry points for the fuzz targets (`fuzz/`) and the corpus replay test: the decoders fed
//! with raw bytes, without a server. Not a stable API.

use connector_core::Result;
use mysql_async::binlog::events::{Event, FormatDescriptionEvent};
use mysql_async::binlog::BinlogVersion;

use crate::binlog::malformed;
use crate::config::{TableFilter, TablePattern};
use crate::ddl::SchemaTracker;
use crate::position::BinlogPosition;
use crate::replication::{Decoder, Flavor};
use crate::schema::Collations;

/// The magic number that opens a binlog file.
const BINLOG_MAGIC: &[u8] = b"\xfebin";
/// Bytes of the common event header.
const HEADER_BYTES: usize = 19;

/// Decode a binlog as `mariadb-binlog --raw` writes it (the magic number is optional): each
/// event, with its common header, through the stream's decoder with every table captured, as
/// the replication stream does after its reader, except that checksums are not verified (so
/// that mutated inputs reach the decoder). Returns the number of change events, or the first
/// error (the stream stops there too).
pub fn decode_binlog(data: &[u8]) -> Result<usize> {
    let data = data.strip_prefix(BINLOG_MAGIC).unwrap_or(data);
    let filter = TableFilter::new(vec![TablePattern {
        schema: "*".into(),
        table: "*".into(),
    }]);
    let from = BinlogPosition::new("fuzz-bin.000001", 4, None);
    let mut decoder = Decoder::new(
        Flavor::MariaDb,
        filter,
        Collations::default(),
        SchemaTracker::new(),
        &from,
    )?;
    let mut fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let mut out = Vec::new();
    let mut events = 0;
    let mut rest = data;
    while rest.len() >= HEADER_BYTES {
        // The event's length, checked against what is there: the reader would allocate it.
        let len = u32::from_le_bytes([rest[9], rest[10], rest[11], rest[12]]) as usize;
        if len < HEADER_BYTES || len > rest.len() {
            return Err(malformed(format!(
                "event of {len} bytes with {} bytes left",
                rest.len()
            )));
        }
        let (raw, tail) = rest.split_at(len);
        rest = tail;
        let ev = Event::read(&fde, raw).map_err(|e| malformed("event header").with_source(e))?;
        if ev.header().event_type_raw() == crate::binlog::event_type::FORMAT_DESCRIPTION {
            let f = ev
                .read_event::<FormatDescriptionEvent<'_>>()
                .map_err(|e| malformed("format description").with_source(e))?;
            fde = f.into_owned().with_footer(ev.footer());
        }
        decoder.process(&ev, &mut out)?;
        events += out.len();
        out.clear();
    }
    Ok(events)
}
