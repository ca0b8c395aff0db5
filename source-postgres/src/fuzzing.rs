//! Entry points for the fuzz targets (`fuzz/`) and the corpus replay test: the pgoutput decoder
//! fed with raw bytes, without a server. Not a stable API.

use std::collections::HashMap;

use connector_core::Result;

use crate::catalog::TableSelector;
use crate::decode::Decoder;
use crate::error::protocol_error;
use crate::position::{Lsn, PgPosition};
use crate::types::TypeCache;

/// Decode a sequence of pgoutput messages, each preceded by its length (4 bytes, big-endian),
/// as the stream does with every table captured; Relation messages are applied without
/// catalog lookups (unknown types decode as text). Returns the number of change events, or
/// the first error (the stream stops there too).
pub fn decode_pgoutput(data: &[u8]) -> Result<usize> {
    let mut decoder = Decoder::new(
        "fuzz".into(),
        TableSelector::new(&[], &[], true),
        TypeCache::default(),
        HashMap::new(),
        PgPosition::stream(Lsn(0), 0),
    );
    let mut out = Vec::new();
    let mut events = 0;
    let mut rest = data;
    let mut wal = 0u64;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| protocol_error("fuzz input: short length prefix"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if len > tail.len() {
            return Err(protocol_error(format!(
                "fuzz input: message of {len} bytes with {} left",
                tail.len()
            )));
        }
        let (msg, tail) = tail.split_at(len);
        rest = tail;
        wal += 1;
        if let Some(rel) = decoder.handle(msg, Lsn(wal), &mut out)? {
            decoder.apply_relation(rel);
        }
        events += out.len();
        out.clear();
    }
    Ok(events)
}
