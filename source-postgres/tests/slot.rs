//! The slot never pins WAL needlessly, keepalives are never starved, and a large transaction
//! streams with bounded memory.

use std::time::{Duration, Instant};

use connector_core::{Op, Source};
use source_postgres::{Lsn, PgPosition};

use crate::common::*;

async fn current_wal(db: &TestDb) -> u64 {
    db.client
        .query_one("SELECT (pg_current_wal_lsn() - '0/0')::int8", &[])
        .await
        .unwrap()
        .get::<_, i64>(0) as u64
}

/// Drain (committing checkpoints) until the slot's confirmed_flush reaches `target`.
async fn advance_until(db: &TestDb, src: &mut source_postgres::PostgresSource, target: u64) {
    let start = Instant::now();
    loop {
        let flushed = db.confirmed_flush(src.slot_name()).await.unwrap_or(0);
        if flushed >= target {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "confirmed_flush_lsn stuck at {} below {}",
            Lsn(flushed),
            Lsn(target)
        );
        let d = drain_for(src, Duration::from_millis(300)).await;
        assert!(d.events.is_empty(), "nothing published was written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slot_advances_when_only_unpublished_tables_are_written() {
    // GIVEN a source on an idle published table, and an unpublished table in the same database
    let db = TestDb::new("unpub").await;
    db.exec("CREATE TABLE published (id int PRIMARY KEY); CREATE TABLE other (id serial PRIMARY KEY, v text)")
        .await;
    let mut src = db.source("tables: [public.published]\nsnapshot: never\n");
    src.start(None).await.unwrap();
    let before = db.confirmed_flush(src.slot_name()).await.unwrap();

    // WHEN only the unpublished table is written
    for _ in 0..20 {
        db.exec("INSERT INTO other (v) SELECT repeat('x', 1000) FROM generate_series(1, 50)")
            .await;
    }
    let target = current_wal(&db).await;
    assert!(target > before);

    // THEN the slot's confirmed_flush_lsn moves past those writes (checkpoint-only batches)
    advance_until(&db, &mut src, target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slot_advances_on_an_idle_database_while_others_write() {
    // GIVEN a source on an idle database
    let db = TestDb::new("idle").await;
    db.exec("CREATE TABLE published (id int PRIMARY KEY)").await;
    let mut src = db.source("tables: [public.published]\nsnapshot: never\n");
    src.start(None).await.unwrap();

    // WHEN another database writes WAL
    let other = TestDb::new("idleother").await;
    other
        .exec("CREATE TABLE noise (v text); INSERT INTO noise SELECT repeat('y', 500) FROM generate_series(1, 2000)")
        .await;
    let target = current_wal(&db).await;

    // THEN this database's slot still advances past it
    advance_until(&db, &mut src, target).await;
    // AND the heartbeat-free source delivered no events
    let d = drain_for(&mut src, Duration::from_millis(300)).await;
    assert!(d.events.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_message_advances_the_slot_without_events() {
    // GIVEN a source with a heartbeat (a logical message of its own)
    let db = TestDb::new("beat").await;
    db.exec("CREATE TABLE published (id int PRIMARY KEY)").await;
    let mut src =
        db.source("tables: [public.published]\nsnapshot: never\nheartbeat_interval_ms: 200\n");
    src.start(None).await.unwrap();
    let start = db.confirmed_flush(src.slot_name()).await.unwrap();
    // WHEN time passes THEN the slot advances and the heartbeats are not delivered as events
    advance_until(&db, &mut src, start + 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_are_answered_while_next_batch_is_stalled() {
    // GIVEN a backlog, a 1 s wal_sender_timeout and a long status interval
    let db = TestDb::new("stall").await;
    db.exec("CREATE TABLE items (id int PRIMARY KEY, pad text)")
        .await;
    let mut src = db.source(
        "tables: [public.items]\nsnapshot: never\nbatch_size: 100\nwal_sender_timeout_ms: 1000\nstatus_interval_ms: 10000\n",
    );
    src.start(None).await.unwrap();
    db.exec("INSERT INTO items SELECT g, repeat('p', 200) FROM generate_series(1, 50000) g")
        .await;
    let first = src.next_batch().await.unwrap().unwrap();
    let pid: i32 = db
        .client
        .query_one(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
            &[&src.slot_name()],
        )
        .await
        .unwrap()
        .get(0);

    // WHEN the consumer stalls for 4x wal_sender_timeout (the internal queue is full)
    tokio::time::sleep(Duration::from_secs(4)).await;

    // THEN the connection survived and every row still arrives
    let mut n = first.events.len();
    let rest = drain_until(&mut src, Duration::from_secs(120), |e| {
        n + e.len() >= 50_000
    })
    .await;
    n += rest.events.len();
    assert_eq!(n, 50_000);
    let pid_after: i32 = db
        .client
        .query_one(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
            &[&src.slot_name()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        pid, pid_after,
        "the walsender was replaced: the connection dropped"
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn large_transaction(rows: i64) {
    // GIVEN one transaction inserting `rows` rows of ~200 bytes
    let db = TestDb::new("large").await;
    db.exec("CREATE TABLE big (id int8 PRIMARY KEY, pad text)")
        .await;
    let mut src = db.source("tables: [public.big]\nsnapshot: never\nbatch_size: 2000\n");
    src.start(None).await.unwrap();
    db.exec(&format!(
        "INSERT INTO big SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, {rows}) g"
    ))
    .await;
    let base = rss_kib();

    // WHEN it is drained, counting without keeping events
    let (mut n, mut peak, mut max_batch, mut mid_checkpoints) = (0i64, base, 0usize, 0usize);
    let mut expect_id = 1i64;
    let start = Instant::now();
    while n < rows {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "timed out at {n}"
        );
        let b = src.next_batch().await.unwrap().unwrap();
        max_batch = max_batch.max(b.events.len());
        for e in &b.events {
            assert_eq!(e.op, Op::Create);
            assert_eq!(id(e), expect_id);
            expect_id += 1;
        }
        n += b.events.len() as i64;
        if let Some(cp) = &b.checkpoint {
            if matches!(PgPosition::parse(cp).unwrap(), PgPosition::Stream { index, .. } if index > 0)
            {
                mid_checkpoints += 1;
            }
            src.commit(cp).await.unwrap();
        }
        peak = peak.max(rss_kib());
    }

    // THEN batches are bounded, checkpoints come from inside the transaction (it was never held
    // whole), and memory stayed far below the transaction's size
    assert_eq!(n, rows);
    assert!(max_batch <= 2000, "{max_batch}");
    assert!(
        mid_checkpoints as i64 >= rows / 2000 - 1,
        "{mid_checkpoints}"
    );
    let grown_mib = peak.saturating_sub(base) / 1024;
    eprintln!(
        "{rows} rows: rss grew {grown_mib} MiB (peak {} MiB)",
        peak / 1024
    );
    assert!(grown_mib < 150, "rss grew {grown_mib} MiB");
}

/// One million rows in one transaction (a few seconds even in a debug build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_million_row_transaction_streams_with_bounded_memory() {
    large_transaction(1_000_000).await;
}
