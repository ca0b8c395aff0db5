//! pgoutput decoding micro-benchmark (no server): transactions of the drain benchmark's shape
//! (Begin, 100 Inserts of ~230-byte rows, Commit) and of updates (old key and new tuple), built
//! as pgoutput (protocol 1) bytes and decoded into `ChangeEvent`s through the source's `Decoder`.
//!
//! `cargo bench -p source-postgres --bench decode`

use std::collections::HashMap;
use std::hint::black_box;

use connector_core::{Op, Value};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use source_postgres::catalog::TableSelector;
use source_postgres::decode::Decoder;
use source_postgres::types::TypeCache;
use source_postgres::{Lsn, PgPosition};

const ROWS_PER_TXN: u64 = 100;
const TRANSACTIONS: u64 = 10;
const OID: u32 = 16_384;

// Type OIDs.
const INT8: u32 = 20;
const TEXT: u32 = 25;
const NUMERIC: u32 = 1700;
const TIMESTAMPTZ: u32 = 1184;

/// `R`: public.bench (id int8 key, name text, amount numeric(12,2), created_at timestamptz,
/// payload text), replica identity default.
fn relation() -> Vec<u8> {
    let mut m = vec![b'R'];
    m.extend_from_slice(&OID.to_be_bytes());
    m.extend_from_slice(b"public\0bench\0");
    m.push(b'd');
    let cols: [(&str, u32, u8, i32); 5] = [
        ("id", INT8, 1, -1),
        ("name", TEXT, 0, -1),
        ("amount", NUMERIC, 0, (12 << 16 | 2) + 4),
        ("created_at", TIMESTAMPTZ, 0, -1),
        ("payload", TEXT, 0, -1),
    ];
    m.extend_from_slice(&(cols.len() as u16).to_be_bytes());
    for (name, ty, flags, typmod) in cols {
        m.push(flags);
        m.extend_from_slice(name.as_bytes());
        m.push(0);
        m.extend_from_slice(&ty.to_be_bytes());
        m.extend_from_slice(&typmod.to_be_bytes());
    }
    m
}

fn text(m: &mut Vec<u8>, s: &str) {
    m.push(b't');
    m.extend_from_slice(&(s.len() as u32).to_be_bytes());
    m.extend_from_slice(s.as_bytes());
}

/// A TupleData of the row with this id, as pgoutput sends it (text format).
fn tuple(m: &mut Vec<u8>, id: u64, bump: u64) {
    m.extend_from_slice(&5u16.to_be_bytes());
    text(m, &id.to_string());
    text(m, &format!("name-{id}"));
    let cents = id * 37 % 10_000_000 + bump;
    text(m, &format!("{}.{:02}", cents / 100, cents % 100));
    text(m, "2024-06-01 12:34:56.123456+00");
    text(
        m,
        &format!("{:0>32x}", id.wrapping_mul(0x9e37_79b9_7f4a_7c15)).repeat(5),
    );
}

fn begin(lsn: u64, xid: u32) -> Vec<u8> {
    let mut m = vec![b'B'];
    m.extend_from_slice(&lsn.to_be_bytes());
    m.extend_from_slice(&770_000_000_000_000u64.to_be_bytes());
    m.extend_from_slice(&xid.to_be_bytes());
    m
}

fn commit(lsn: u64, end: u64) -> Vec<u8> {
    let mut m = vec![b'C', 0];
    m.extend_from_slice(&lsn.to_be_bytes());
    m.extend_from_slice(&end.to_be_bytes());
    m.extend_from_slice(&770_000_000_000_000u64.to_be_bytes());
    m
}

/// Messages of `TRANSACTIONS` transactions of inserts (`update` false) or updates that carry the
/// old key (`K`) and the new tuple.
fn messages(update: bool) -> Vec<Vec<u8>> {
    let mut out = vec![relation()];
    for t in 0..TRANSACTIONS {
        let lsn = 0x1_0000_0000 + t * 0x10_0000;
        out.push(begin(lsn + 0x8_0000, 1000 + t as u32));
        for i in 0..ROWS_PER_TXN {
            let id = t * ROWS_PER_TXN + i + 1;
            let mut m = vec![if update { b'U' } else { b'I' }];
            m.extend_from_slice(&OID.to_be_bytes());
            if update {
                m.push(b'K');
                m.extend_from_slice(&5u16.to_be_bytes());
                text(&mut m, &id.to_string());
                m.extend_from_slice(b"nnnn");
            }
            m.push(b'N');
            tuple(&mut m, id, u64::from(update) * 100);
            out.push(m);
        }
        out.push(commit(lsn + 0x8_0000, lsn + 0x8_0100));
    }
    out
}

fn decoder() -> Decoder {
    Decoder::new(
        "bench".into(),
        TableSelector::new(&["public.*".into()], &[], false),
        TypeCache::default(),
        HashMap::new(),
        PgPosition::stream(Lsn(0x1_0000_0000), 0),
    )
}

/// Decode every message; Relation messages are applied at once (no catalog here).
fn decode(d: &mut Decoder, msgs: &[Vec<u8>], out: &mut Vec<connector_core::ChangeEvent>) {
    for (i, m) in msgs.iter().enumerate() {
        if let Some(rel) = d
            .handle(m, Lsn(0x1_0000_0000 + i as u64 * 0x100), out)
            .expect("decode")
        {
            d.apply_relation(rel);
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("pgoutput_decode");
    group.throughput(Throughput::Elements(TRANSACTIONS * ROWS_PER_TXN));
    for (name, update, op) in [("insert", false, Op::Create), ("update", true, Op::Update)] {
        let msgs = messages(update);
        // Check once that the bytes decode to what they should.
        let mut out = Vec::new();
        decode(&mut decoder(), &msgs, &mut out);
        assert_eq!(out.len() as u64, TRANSACTIONS * ROWS_PER_TXN, "{name}");
        assert_eq!(out[0].op, op);
        let after = out[0].after.as_ref().expect("new tuple");
        assert_eq!(after[0], Value::Int(1));
        assert_eq!(after[1], Value::Text("name-1".into()));
        let cents = if update { "1.37" } else { "0.37" };
        assert_eq!(after[2], Value::Decimal(cents.into()), "{after:?}");
        group.bench_function(name, |b| {
            let mut out = Vec::with_capacity(msgs.len());
            b.iter(|| {
                let mut d = decoder();
                out.clear();
                decode(&mut d, &msgs, &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
