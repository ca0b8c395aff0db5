//! Binlog row decoding micro-benchmark (no server): MariaDB transactions of the drain benchmark's
//! shape (GTID, `TABLE_MAP` with full metadata, `WRITE_ROWS` of 100 rows of ~230 bytes, `XID`),
//! and an update transaction (before and after images), decoded from event bytes into
//! `ChangeEvent`s through the source's `Decoder`.
//!
//! `cargo bench -p source-mysql --bench decode`

use std::hint::black_box;

use connector_core::{Op, Value};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mysql_async::binlog::events::{Event, FormatDescriptionEvent};
use mysql_async::binlog::BinlogVersion;
use source_mysql::binlog::event_type as et;
use source_mysql::config::{TableFilter, TablePattern};
use source_mysql::ddl::SchemaTracker;
use source_mysql::replication::{Decoder, Flavor};
use source_mysql::schema::Collations;
use source_mysql::BinlogPosition;

const ROWS_PER_EVENT: u64 = 100;
const TRANSACTIONS: u64 = 10;
const TABLE_ID: u64 = 0x0102;

// Column types (binlog codes).
const LONGLONG: u8 = 8;
const VARCHAR: u8 = 15;
const NEWDECIMAL: u8 = 246;
const DATETIME2: u8 = 18;

/// A v4 event: 19-byte header, then `body` (the reader's format description has no checksums).
fn event(fde: &FormatDescriptionEvent<'static>, t: u8, log_pos: u32, body: &[u8]) -> Event {
    let mut v = Vec::with_capacity(19 + body.len());
    v.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    v.push(t);
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&((19 + body.len()) as u32).to_le_bytes());
    v.extend_from_slice(&log_pos.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(body);
    Event::read(fde, &v[..]).expect("a valid event")
}

/// `TABLE_MAP` of `bench`.`b` (id BIGINT PK, name VARCHAR(64), amount DECIMAL(12,2),
/// created_at DATETIME(6), payload VARCHAR(200)), utf8mb4, with MariaDB's FULL metadata.
fn table_map() -> Vec<u8> {
    let types = [LONGLONG, VARCHAR, NEWDECIMAL, DATETIME2, VARCHAR];
    // VARCHAR(64) utf8mb4: 256 bytes; DECIMAL(12,2); DATETIME(6); VARCHAR(200): 800 bytes.
    let meta = [0x00, 0x01, 12, 2, 6, 0x20, 0x03];
    let mut v = TABLE_ID.to_le_bytes()[..6].to_vec();
    v.extend_from_slice(&1u16.to_le_bytes());
    v.push(5);
    v.extend_from_slice(b"bench\0");
    v.push(1);
    v.extend_from_slice(b"b\0");
    v.push(types.len() as u8);
    v.extend_from_slice(&types);
    v.push(meta.len() as u8);
    v.extend_from_slice(&meta);
    v.push(0b0000_0000); // nothing nullable
                         // Optional metadata: SIGNEDNESS (id, amount signed), DEFAULT_CHARSET utf8mb4_general_ci (45),
                         // COLUMN_NAME, SIMPLE_PRIMARY_KEY (column 0).
    v.extend_from_slice(&[1, 1, 0b0000_0000]);
    v.extend_from_slice(&[2, 1, 45]);
    let mut names = Vec::new();
    for n in ["id", "name", "amount", "created_at", "payload"] {
        names.push(n.len() as u8);
        names.extend_from_slice(n.as_bytes());
    }
    v.push(4);
    v.push(names.len() as u8);
    v.extend_from_slice(&names);
    v.extend_from_slice(&[8, 1, 0]);
    v
}

/// One row image (all five columns present, none null).
fn row(out: &mut Vec<u8>, id: u64, amount_cents: u64) {
    out.push(0); // null bitmap
    out.extend_from_slice(&id.to_le_bytes());
    let name = format!("name-{id}");
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    // DECIMAL(12,2): one leading digit byte, a 9-digit group, one byte of 2 fraction digits;
    // positive values have the top bit flipped.
    let (int, frac) = (amount_cents / 100, amount_cents % 100);
    out.push(((int / 1_000_000_000) as u8) ^ 0x80);
    out.extend_from_slice(&((int % 1_000_000_000) as u32).to_be_bytes());
    out.push(frac as u8);
    // DATETIME(6): 2024-06-01 12:34:56.123456
    let ym: u64 = 2024 * 13 + 6;
    let packed: u64 = (1 << 39) | (ym << 22) | (1 << 17) | (12 << 12) | (34 << 6) | 56;
    out.extend_from_slice(&packed.to_be_bytes()[3..]);
    out.extend_from_slice(&123_456u32.to_be_bytes()[1..]);
    let payload = format!("{:0>32x}", id.wrapping_mul(0x9e37_79b9_7f4a_7c15)).repeat(5);
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload.as_bytes());
}

fn rows_event(kind: u8, first_id: u64, n: u64) -> Vec<u8> {
    let mut v = TABLE_ID.to_le_bytes()[..6].to_vec();
    v.extend_from_slice(&0u16.to_le_bytes()); // flags (v1: no extra data)
    v.push(5);
    v.push(0b1_1111); // columns present
    if kind == et::UPDATE_ROWS_V1 {
        v.push(0b1_1111); // after image
    }
    for id in first_id..first_id + n {
        row(&mut v, id, id * 37 % 10_000_000);
        if kind == et::UPDATE_ROWS_V1 {
            row(&mut v, id, id * 37 % 10_000_000 + 100);
        }
    }
    v
}

/// Transactions of `ROWS_PER_EVENT` rows each, as the server sends them.
fn transactions(fde: &FormatDescriptionEvent<'static>, kind: u8) -> Vec<Event> {
    let mut out = Vec::new();
    let tm = table_map();
    let mut pos = 400u32;
    for t in 0..TRANSACTIONS {
        let mut gtid = (1000 + t).to_le_bytes().to_vec();
        gtid.extend_from_slice(&0u32.to_le_bytes()); // domain
        gtid.push(0x0c); // flags: transactional, not standalone
        let rows = rows_event(kind, t * ROWS_PER_EVENT + 1, ROWS_PER_EVENT);
        for (ty, body) in [
            (et::MARIA_GTID, gtid),
            (et::TABLE_MAP, tm.clone()),
            (kind, rows),
            (et::XID, (7 + t).to_le_bytes().to_vec()),
        ] {
            pos += 19 + body.len() as u32;
            out.push(event(fde, ty, pos, &body));
        }
    }
    out
}

fn decoder() -> Decoder {
    let filter = TableFilter::new(vec![TablePattern {
        schema: "bench".into(),
        table: "*".into(),
    }]);
    let from = BinlogPosition::new("mysql-bin.000001", 400, Some("0-1-999".into()));
    Decoder::new(
        Flavor::MariaDb,
        filter,
        Collations::default(),
        SchemaTracker::new(),
        &from,
    )
    .expect("decoder")
}

fn bench(c: &mut Criterion) {
    let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let mut group = c.benchmark_group("binlog_decode");
    group.throughput(Throughput::Elements(TRANSACTIONS * ROWS_PER_EVENT));
    for (name, kind, op) in [
        ("write_rows", et::WRITE_ROWS_V1, Op::Create),
        ("update_rows", et::UPDATE_ROWS_V1, Op::Update),
    ] {
        let events = transactions(&fde, kind);
        // Check once that the bytes decode to what they should.
        let mut d = decoder();
        let mut out = Vec::new();
        for e in &events {
            d.process(e, &mut out).expect("decode");
        }
        assert_eq!(out.len() as u64, TRANSACTIONS * ROWS_PER_EVENT, "{name}");
        assert_eq!(out[0].op, op);
        let after = out[0].after.as_ref().expect("after image");
        assert_eq!(after[0], Value::Int(1));
        assert_eq!(after[1], Value::Text("name-1".into()));
        let cents = if op == Op::Create { "0.37" } else { "1.37" };
        assert_eq!(after[2], Value::Decimal(cents.into()), "{after:?}");
        group.bench_function(name, |b| {
            let mut out = Vec::with_capacity(events.len() * ROWS_PER_EVENT as usize);
            b.iter(|| {
                let mut d = decoder();
                out.clear();
                for e in &events {
                    d.process(e, &mut out).unwrap();
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
