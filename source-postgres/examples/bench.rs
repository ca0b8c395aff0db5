//! Drain benchmark: a backlog of 200,000 inserts (2,000 transactions x 100 rows, ~230 bytes a
//! row) read by `pg_recvlogical` (pgoutput, proto 1, into a file) and by this source (alone, and
//! encoding every event to Debezium JSON into a file), in one run, from slots with the same
//! backlog.
//!
//! ```sh
//! eval "$(scripts/services.sh up)"
//! CARGO_TARGET_DIR=/work/target-pg cargo run --release -p source-postgres --example bench
//! ```
//!
//! Environment: `CDC_TEST_PG_URL` (required), `BENCH_TXNS` (2000), `BENCH_ROWS_PER_TXN` (100).

use std::io::Write as _;
use std::time::{Duration, Instant};

use connector_core::{ConfigSection, Context, Encoder, Format, Source};
use source_postgres::PostgresSource;
use tokio_postgres::NoTls;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to CDC_TEST_PG_URL");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

async fn drain(
    url: &str,
    slot: &str,
    total: u64,
    encode: Option<&std::path::Path>,
) -> (Duration, u64) {
    let yaml = format!(
        "type: postgres\nurl: \"{url}\"\nsslmode: disable\ntables: [public.bench]\nslot: {slot}\n\
         publication: bench_pub\nsnapshot: never\nlag_interval_ms: 0\n"
    );
    let section = ConfigSection::from_yaml("source", &yaml).unwrap();
    let mut src = PostgresSource::new(section.extract().unwrap(), &Context::new("bench")).unwrap();
    let encoder = Encoder::new("bench", Format::Debezium);
    let mut file = encode
        .map(|p| std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(p).unwrap()));
    let mut buf = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    src.start(None).await.expect("start");
    let mut n = 0u64;
    while n < total {
        let b = src.next_batch().await.expect("next_batch").expect("batch");
        n += b.events.len() as u64;
        if let Some(f) = file.as_mut() {
            let now = connector_core::runtime::now_micros();
            buf.clear();
            for e in &b.events {
                encoder.write_key(e, &mut buf);
                buf.push(b'\t');
                encoder.write_value(e, now, &mut buf);
                buf.push(b'\n');
            }
            f.write_all(&buf).unwrap();
        }
        if let Some(cp) = &b.checkpoint {
            src.commit(cp).await.unwrap();
        }
    }
    if let Some(mut f) = file {
        f.flush().unwrap();
        f.get_ref().sync_all().unwrap();
    }
    let took = start.elapsed();
    src.stop().await.unwrap();
    (took, n)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let base = std::env::var("CDC_TEST_PG_URL").expect("CDC_TEST_PG_URL is not set");
    let txns = env_num("BENCH_TXNS", 2000);
    let per = env_num("BENCH_ROWS_PER_TXN", 100);
    let total = txns * per;
    let db = format!("bench_pg_{}", std::process::id());
    let admin = connect(&base).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    let url = format!("{prefix}/{db}");
    let c = connect(&url).await;
    c.batch_execute(
        "CREATE TABLE bench (id int8 PRIMARY KEY, name text, amount numeric(12,2), \
         created_at timestamptz, payload text); CREATE PUBLICATION bench_pub FOR TABLE bench",
    )
    .await
    .unwrap();
    for slot in ["bench_recv", "bench_src", "bench_enc"] {
        c.execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .unwrap();
    }
    eprintln!("inserting {total} rows in {txns} transactions...");
    let t0 = Instant::now();
    for t in 0..txns {
        let from = t * per + 1;
        c.batch_execute(&format!(
            "INSERT INTO bench SELECT g, 'name-' || g, (g % 100000) / 100.0, now(), \
             repeat(md5(g::text), 5) FROM generate_series({from}, {}) g",
            from + per - 1
        ))
        .await
        .unwrap();
    }
    let end: String = c
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let row_bytes: f64 = c
        .query_one(
            "SELECT avg(pg_column_size(bench.*))::float8 FROM bench",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!(
        "inserted in {:.1}s; rows ~{row_bytes:.0} bytes; WAL end {end}",
        t0.elapsed().as_secs_f64()
    );

    // pg_recvlogical: the ceiling.
    let out = std::env::temp_dir().join(format!("{db}.recvlogical"));
    let t = Instant::now();
    let status = std::process::Command::new("pg_recvlogical")
        .args(["-d", &url, "--slot", "bench_recv", "--start", "--no-loop"])
        .args(["-o", "proto_version=1", "-o", "publication_names=bench_pub"])
        .args(["-E", &end, "-f"])
        .arg(&out)
        .status()
        .expect("run pg_recvlogical");
    let recv = t.elapsed();
    assert!(status.success(), "pg_recvlogical failed");
    let recv_bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);

    let rss_before = status_kib("VmRSS:");
    let (ours, n) = drain(&url, "bench_src", total, None).await;
    let hwm_alone = status_kib("VmHWM:");
    let enc_path = std::env::temp_dir().join(format!("{db}.jsonl"));
    let (enc, n2) = drain(&url, "bench_enc", total, Some(&enc_path)).await;
    let hwm = status_kib("VmHWM:");
    let enc_bytes = std::fs::metadata(&enc_path).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&enc_path);

    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
    println!("backlog: {total} inserts in {txns} transactions, ~{row_bytes:.0} bytes a row");
    println!(
        "pg_recvlogical (pgoutput v1 -> file, {:.1} MB): {:.3} s, {:.0} rows/s",
        recv_bytes as f64 / 1e6,
        recv.as_secs_f64(),
        rate(total, recv)
    );
    println!(
        "source-postgres (decode to events):         {:.3} s, {:.0} events/s, {:.0}% of pg_recvlogical",
        ours.as_secs_f64(),
        rate(n, ours),
        100.0 * rate(n, ours) / rate(total, recv)
    );
    println!(
        "source-postgres + Debezium JSON -> file ({:.1} MB): {:.3} s, {:.0} events/s, {:.0}% of pg_recvlogical",
        enc_bytes as f64 / 1e6,
        enc.as_secs_f64(),
        rate(n2, enc),
        100.0 * rate(n2, enc) / rate(total, recv)
    );
    println!(
        "resident memory: {} MiB before draining, peak {} MiB (source alone), peak {} MiB (with encoding)",
        rss_before / 1024,
        hwm_alone / 1024,
        hwm / 1024
    );

    drop(c);
    for slot in ["bench_recv", "bench_src", "bench_enc"] {
        let _ = admin
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await;
    }
    let _ = admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await;
}
