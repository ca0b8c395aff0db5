//! Incremental snapshots of PostgreSQL tables, signalled through the signalling table while the
//! pipeline streams, against the real server (and broker): DBLog dedupe under a concurrent load,
//! resuming after `kill -9` at the next chunk.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use crate::common::{
    cdc, cdc_output, free_port, read_jsonl, run_log, signal, spawn_run, spawn_run_env,
    wait_timeout, wait_until, Workdir,
};
use crate::kafka::{brokers, read_topic};
use crate::postgres::{connect, Db};

/// The signalling table, with Debezium's columns.
const SIGNAL_TABLE: &str =
    "CREATE TABLE cdc_signal (id varchar(64) PRIMARY KEY, type varchar(32) NOT NULL, data text)";

/// A row of the test table as the topic or the table holds it: `(v, note)`.
type Row = (i64, Option<String>);

/// Replay change records (key id, envelope): last event per key, deletes removing.
fn replay<'a>(
    records: impl IntoIterator<Item = (i64, Option<&'a serde_json::Value>)>,
) -> BTreeMap<i64, Row> {
    let mut state = BTreeMap::new();
    for (id, value) in records {
        match value {
            None => {
                state.remove(&id);
            }
            Some(v) if v["op"] == "d" => {
                state.remove(&id);
            }
            Some(v) => {
                let after = &v["after"];
                state.insert(
                    id,
                    (
                        after["v"].as_i64().expect("after.v"),
                        after["note"].as_str().map(str::to_string),
                    ),
                );
            }
        }
    }
    state
}

async fn table_state(client: &tokio_postgres::Client) -> BTreeMap<i64, Row> {
    client
        .query("SELECT id, v, note FROM items", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                i64::from(r.get::<_, i32>(0)),
                (i64::from(r.get::<_, i32>(1)), r.get(2)),
            )
        })
        .collect()
}

/// Wait until the pipeline streams from its slot (the slot shows as active while it is being
/// created, before its consistent point: a signal written then would not be in the stream).
async fn wait_streaming(db: &Db, slot: &str, config: &std::path::Path) {
    let mut streaming = false;
    for _ in 0..1500 {
        let active = db
            .client
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
                &[&slot],
            )
            .await
            .unwrap()
            .is_some();
        if active && run_log(config).contains("streaming changes") {
            streaming = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        streaming,
        "the pipeline is not streaming\n{}",
        run_log(config)
    );
}

fn finished(config: &std::path::Path, n: usize) -> bool {
    run_log(config)
        .matches("incremental snapshot finished")
        .count()
        >= n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signalled_snapshot_under_updates_and_deletes_replays_to_the_table() {
    const ROWS: i64 = 3_000;
    let brokers = brokers();
    // GIVEN a table with rows, a signalling table (not in `tables:`), and a pipeline streaming
    // into Kafka without an initial snapshot
    let db = Db::new("pginc").await;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, note text);
             INSERT INTO items SELECT g, 0, 'initial ' || g FROM generate_series(1, {ROWS}) g;
             {SIGNAL_TABLE};"
        ))
        .await
        .unwrap();
    let name = db.name.clone();
    let topic = format!("{name}.public.items");
    let w = Workdir::new();
    let config = w.write(
        "pg.yaml",
        &format!(
            "name: {name}\n\
             source: {{ type: postgres, url: '{}', tables: [public.items], slot: {name}, \
               snapshot: never, signal_table: public.cdc_signal, snapshot_chunk_size: 50 }}\n\
             sink: {{ type: kafka, brokers: '{brokers}', headers: false, create_topics: {{ partitions: 3 }} }}\n\
             offsets: {{ type: file, path: '{{dir}}/pg.offsets' }}\n\
             pipeline: {{ offset_flush_interval_ms: 100 }}\n",
            db.url()
        ),
    );
    let mut child = spawn_run(&config, Stdio::null());
    wait_streaming(&db, &name, &config).await;

    // WHEN a load updates and deletes rows while a signal asks for a snapshot of the table
    let load_client = connect(&db.url()).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_load = std::sync::Arc::clone(&stop);
    let load = tokio::spawn(async move {
        let mut touched = BTreeSet::new();
        let mut i: i64 = 0;
        while !stop_load.load(std::sync::atomic::Ordering::Relaxed) || i < 300 {
            let id = (i * 7919) % ROWS + 1;
            let sql = if i % 5 == 4 {
                "DELETE FROM items WHERE id = $1"
            } else {
                "UPDATE items SET v = v + 1, note = 'load' WHERE id = $1"
            };
            load_client.execute(sql, &[&(id as i32)]).await.unwrap();
            touched.insert(id);
            i += 1;
        }
        touched
    });
    db.client
        .batch_execute(
            "INSERT INTO cdc_signal VALUES ('snap-1', 'execute-snapshot', \
             '{\"data-collections\": [\"public.items\"], \"type\": \"incremental\"}')",
        )
        .await
        .unwrap();
    // THEN the snapshot finishes while streaming goes on
    assert!(
        wait_until(Duration::from_secs(120), || finished(&config, 1)),
        "the incremental snapshot did not finish\n{}",
        run_log(&config)
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let touched = load.await.unwrap();

    // AND replaying the topic (last event per key, deletes removing) gives the table
    let expected = table_state(&db.client).await;
    let mut records = Vec::new();
    let complete = wait_until(Duration::from_secs(90), || {
        records = read_topic(&brokers, &topic);
        let state = replay(records.iter().filter_map(|r| {
            let id = r.key.as_ref()?["id"].as_i64()?;
            Some((id, r.value.as_ref()))
        }));
        state == expected
    });
    assert!(
        complete,
        "the topic does not replay to the table\n{}",
        run_log(&config)
    );
    // AND every row the load did not touch has an `r` event marked incremental
    let reads: BTreeSet<i64> = records
        .iter()
        .filter_map(|r| {
            let v = r.value.as_ref()?;
            (v["op"] == "r").then_some(())?;
            assert_eq!(v["source"]["snapshot"], "incremental", "{v}");
            v["after"]["id"].as_i64()
        })
        .collect();
    let missing: Vec<i64> = (1..=ROWS)
        .filter(|id| !touched.contains(id) && !reads.contains(id))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "untouched rows without an r event: {missing:?}"
    );
    // AND the signalling table's rows and the watermarks were never emitted
    assert!(read_topic(&brokers, &format!("{name}.public.cdc_signal")).is_empty());
    assert!(
        records
            .iter()
            .all(|r| r.value.as_ref().is_none_or(|v| v["op"] != "m")),
        "a watermark was emitted"
    );

    signal(&child, "TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "{}", run_log(&config));
    db.drop(&name).await;
}

/// The progress stored with the position in a file offset store, if a snapshot runs.
fn stored_progress(w: &Workdir) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(w.path("pg.offsets")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let position = v["position"].as_str()?;
    let (_, progress) = position.split_once("#incremental=")?;
    serde_json::from_str(progress).ok()
}

/// A database `prefix…` with `items` (`rows` rows) and the signalling table, and a pipeline
/// config streaming it into `out.jsonl` with incremental chunks of `chunk` rows.
async fn items_into_a_file(
    prefix: &str,
    rows: i64,
    chunk: usize,
    flush_ms: u64,
) -> (Db, String, Workdir, std::path::PathBuf) {
    let db = Db::new(prefix).await;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, note text);
             INSERT INTO items SELECT g, 0, 'initial' FROM generate_series(1, {rows}) g;
             {SIGNAL_TABLE};"
        ))
        .await
        .unwrap();
    let name = db.name.clone();
    let w = Workdir::new();
    let config = w.write(
        "pg.yaml",
        &format!(
            "name: {name}\n\
             source: {{ type: postgres, url: '{}', tables: [public.items], slot: {name}, \
               snapshot: never, signal_table: public.cdc_signal, snapshot_chunk_size: {chunk} }}\n\
             sink: {{ type: file, path: '{{dir}}/out.jsonl' }}\n\
             offsets: {{ type: file, path: '{{dir}}/pg.offsets' }}\n\
             pipeline: {{ offset_flush_interval_ms: {flush_ms} }}\n",
            db.url()
        ),
    );
    (db, name, w, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_snapshot_resumes_at_the_next_chunk() {
    const ROWS: i64 = 20_000;
    // GIVEN a pipeline streaming a table of rows into a file, with small chunks
    let (db, name, w, config) = items_into_a_file("pgincres", ROWS, 100, 100).await;
    let out = w.path("out.jsonl");
    let mut child = spawn_run(&config, Stdio::null());
    wait_streaming(&db, &name, &config).await;

    // WHEN a snapshot is signalled, and the pipeline is killed with SIGKILL twice mid-snapshot
    db.client
        .batch_execute(
            "INSERT INTO cdc_signal VALUES ('snap-resume', 'execute-snapshot', \
             '{\"data-collections\": [\"public.items\"]}')",
        )
        .await
        .unwrap();
    for chunks in [20, 60] {
        assert!(
            wait_until(Duration::from_secs(60), || stored_progress(&w)
                .and_then(|p| p["chunks"].as_u64())
                .is_some_and(|c| c >= chunks)),
            "no snapshot progress was stored\n{}",
            run_log(&config)
        );
        signal(&child, "KILL");
        child.wait().unwrap();
        assert!(
            read_events(&out) < ROWS as usize,
            "the snapshot finished before the kill"
        );
        // AND restarted
        child = spawn_run(&config, Stdio::null());
    }

    // THEN the snapshot resumes at its next chunk and finishes
    assert!(
        wait_until(Duration::from_secs(120), || finished(&config, 1)),
        "the resumed snapshot did not finish\n{}",
        run_log(&config)
    );
    let log = run_log(&config);
    assert_eq!(
        log.matches("resuming the incremental snapshot at its next chunk")
            .count(),
        2,
        "{log}"
    );
    // AND every row has an `r` event, with at most 1.3x the table's rows in all
    let mut reads: BTreeMap<i64, usize> = BTreeMap::new();
    let all = wait_until(Duration::from_secs(30), || {
        reads.clear();
        for l in read_jsonl(&out) {
            if l["value"]["op"] == "r" {
                let id = l["value"]["after"]["id"].as_i64().expect("after.id");
                *reads.entry(id).or_default() += 1;
            }
        }
        reads.len() == ROWS as usize
    });
    assert!(
        all,
        "rows without an r event: {}",
        ROWS as usize - reads.len()
    );
    let total: usize = reads.values().sum();
    assert!(
        total as f64 <= 1.3 * ROWS as f64,
        "{total} r events for {ROWS} rows: the snapshot started over"
    );
    // AND the stored position carries no progress once it is done
    assert!(wait_until(Duration::from_secs(10), || stored_progress(&w).is_none()));

    signal(&child, "TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "{}", run_log(&config));
    db.drop(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_snapshot_signals_the_pipeline_and_bad_signals_are_rejected_while_streaming_goes_on() {
    // GIVEN a streaming pipeline with a signalling table, a table with a key and one without
    let db = Db::new("pgincli").await;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, note text);
             INSERT INTO items SELECT g, 0, 'initial' FROM generate_series(1, 500) g;
             CREATE TABLE nokey (a int);
             {SIGNAL_TABLE};"
        ))
        .await
        .unwrap();
    let name = db.name.clone();
    let w = Workdir::new();
    let pipeline = |signal: &str| {
        format!(
            "name: {name}\n\
             source: {{ type: postgres, url: '{}', tables: [public.items, public.nokey], \
               slot: {name}, snapshot: never{signal} }}\n\
             sink: {{ type: file, path: '{{dir}}/out.jsonl' }}\n\
             offsets: {{ type: file, path: '{{dir}}/pg.offsets' }}\n\
             pipeline: {{ offset_flush_interval_ms: 100 }}\n",
            db.url()
        )
    };
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let config = w.write(
        "pg.yaml",
        &pipeline(", signal_table: public.cdc_signal, snapshot_chunk_size: 30"),
    );
    let unsignalled = w.write("plain.yaml", &pipeline(""));
    let c = config.to_str().unwrap();
    let out = w.path("out.jsonl");
    let mut child = spawn_run_env(&config, Stdio::null(), &[("CDC_HTTP__ADDRESS", &address)]);
    wait_streaming(&db, &name, &config).await;

    // WHEN `cdc snapshot` is asked for what the configuration cannot take
    // THEN it exits non-zero with the reason and writes no signal
    for (args, reason) in [
        (
            vec![
                "snapshot",
                "-c",
                unsignalled.to_str().unwrap(),
                "--table",
                "public.items",
            ],
            "signal_table",
        ),
        (
            vec!["snapshot", "-c", c, "--table", "public.nothere"],
            "not captured",
        ),
        (
            vec![
                "snapshot",
                "-c",
                c,
                "--table",
                "public.items",
                "--filter",
                "no_such_column > 1",
            ],
            "no_such_column",
        ),
    ] {
        let o = cdc_output(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
    let signals: i64 = db
        .client
        .query_one("SELECT count(*) FROM cdc_signal", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(signals, 0);

    // WHEN bad signals are written into the signalling table by hand
    db.client
        .batch_execute(
            "INSERT INTO cdc_signal VALUES ('bad-json', 'execute-snapshot', '{\"data-collections\": [');
             INSERT INTO cdc_signal VALUES ('bad-type', 'explode-snapshot', '{}');
             INSERT INTO cdc_signal VALUES ('no-key', 'execute-snapshot', \
               '{\"data-collections\": [\"public.nokey\"]}');
             INSERT INTO items VALUES (1000, 1, 'after the bad signals');",
        )
        .await
        .unwrap();
    // THEN each is logged as one error naming the signal and the reason, and streaming goes on
    let logged = wait_until(Duration::from_secs(30), || {
        let log = run_log(&config);
        log.contains("signal \"bad-json\": malformed JSON")
            && log.contains("signal \"bad-type\": unknown signal type \"explode-snapshot\"")
            && log.contains("public.nokey has no primary key")
            && read_jsonl(&out)
                .iter()
                .any(|l| l["value"]["after"]["id"] == 1000 && l["value"]["op"] == "c")
    });
    assert!(logged, "{}", run_log(&config));

    // WHEN `cdc snapshot` asks for the rows of a filter
    let o = cdc_output(&[
        "snapshot",
        "-c",
        c,
        "--table",
        "public.items",
        "--filter",
        "id <= 100",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("recorded"));
    // THEN exactly those rows are read, and the status shows the rejected signals
    assert!(
        wait_until(Duration::from_secs(60), || finished(&config, 1)),
        "{}",
        run_log(&config)
    );
    let reads = || -> BTreeSet<i64> {
        read_jsonl(&out)
            .iter()
            .filter(|l| l["value"]["op"] == "r")
            .filter_map(|l| l["value"]["after"]["id"].as_i64())
            .collect()
    };
    assert!(wait_until(Duration::from_secs(10), || reads().len() >= 100));
    assert_eq!(reads(), (1..=100).collect::<BTreeSet<i64>>());
    let o = cdc()
        .args(["snapshot", "-c", c, "--status"])
        .env("CDC_HTTP__ADDRESS", &address)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        status.contains("no incremental snapshot is running"),
        "{status}"
    );
    assert!(status.contains("rejected signals: 3"), "{status}");
    assert!(
        status.contains("last rejected signal \"no-key\": table public.nokey has no primary key"),
        "{status}"
    );

    signal(&child, "TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "{}", run_log(&config));
    db.drop(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_incremental_streams_at_once_and_a_table_added_later_is_snapshotted_on_restart() {
    // GIVEN two tables, and a pipeline on one of them in `snapshot: incremental` mode
    let db = Db::new("pgincnew").await;
    db.client
        .batch_execute(
            "CREATE TABLE a (id int PRIMARY KEY, v int NOT NULL);
             INSERT INTO a SELECT g, 0 FROM generate_series(1, 300) g;
             CREATE TABLE b (id int PRIMARY KEY, v int NOT NULL);
             INSERT INTO b SELECT g, 0 FROM generate_series(1, 200) g;",
        )
        .await
        .unwrap();
    let name = db.name.clone();
    let w = Workdir::new();
    let write = |tables: &str| {
        w.write(
            "pg.yaml",
            &format!(
                "name: {name}\n\
                 source: {{ type: postgres, url: '{}', tables: [{tables}], slot: {name}, \
                   snapshot: incremental, snapshot_chunk_size: 50 }}\n\
                 sink: {{ type: file, path: '{{dir}}/out.jsonl' }}\n\
                 offsets: {{ type: file, path: '{{dir}}/pg.offsets' }}\n\
                 pipeline: {{ offset_flush_interval_ms: 100 }}\n",
                db.url()
            ),
        )
    };
    let out = w.path("out.jsonl");
    let reads = |table: &str| -> BTreeMap<i64, usize> {
        let mut m = BTreeMap::new();
        for l in read_jsonl(&out) {
            let v = &l["value"];
            if v["op"] == "r" && v["source"]["table"] == table {
                *m.entry(v["after"]["id"].as_i64().expect("id")).or_default() += 1;
            }
        }
        m
    };
    let config = write("public.a");
    let mut child = spawn_run(&config, Stdio::null());
    // THEN it streams at once and snapshots the table incrementally
    wait_streaming(&db, &name, &config).await;
    db.client
        .batch_execute("UPDATE a SET v = 1 WHERE id = 300")
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || finished(&config, 1)),
        "{}",
        run_log(&config)
    );
    assert!(wait_until(Duration::from_secs(10), || reads("a").len() >= 299));
    assert!(read_jsonl(&out)
        .iter()
        .any(|l| l["value"]["op"] == "u" && l["value"]["after"]["id"] == 300));
    signal(&child, "TERM");
    assert!(wait_timeout(&mut child, Duration::from_secs(30))
        .expect("exits")
        .success());

    // WHEN the other table is added to the configuration and the pipeline restarted
    let config = write("public.a, public.b");
    let mut child = spawn_run(&config, Stdio::null());
    // THEN only the new table is snapshotted
    assert!(
        wait_until(Duration::from_secs(60), || finished(&config, 2)),
        "{}",
        run_log(&config)
    );
    assert!(wait_until(Duration::from_secs(10), || reads("b").len() == 200));
    assert!(
        reads("a").values().all(|n| *n == 1),
        "the old table was read again"
    );
    assert!(run_log(&config).contains("tables new to the configuration"));

    signal(&child, "TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "{}", run_log(&config));
    db.drop(&name).await;
}

/// Count the `r` events in a file sink's output.
fn read_events(path: &std::path::Path) -> usize {
    read_jsonl(path)
        .iter()
        .filter(|l| l["value"]["op"] == "r")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_stop_signals_control_the_running_snapshot() {
    const ROWS: i64 = 20_000;
    // GIVEN a snapshot running in small chunks
    let (db, name, w, config) = items_into_a_file("pgincctl", ROWS, 20, 50).await;
    let out = w.path("out.jsonl");
    let mut child = spawn_run(&config, Stdio::null());
    wait_streaming(&db, &name, &config).await;
    let send = |id: &str, kind: &str| {
        format!("INSERT INTO cdc_signal VALUES ('{id}', '{kind}', '{{\"data-collections\": [\"public.items\"]}}')")
    };
    db.client
        .batch_execute(&send("ctl-run", "execute-snapshot"))
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || read_events(&out) >= 100),
        "{}",
        run_log(&config)
    );

    // WHEN it is paused
    db.client
        .batch_execute(&send("ctl-pause", "pause-snapshot"))
        .await
        .unwrap();
    assert!(wait_until(Duration::from_secs(30), || stored_progress(&w)
        .is_some_and(|p| p["paused"] == true)));
    // THEN no more chunks are read (at most the window open when it paused), streaming goes on
    let at_pause = read_events(&out);
    for id in [ROWS + 1, ROWS + 2] {
        db.client
            .execute(
                "INSERT INTO items VALUES ($1, 1, 'streamed')",
                &[&(id as i32)],
            )
            .await
            .unwrap();
        assert!(wait_until(Duration::from_secs(30), || read_jsonl(&out)
            .iter()
            .any(
                |l| l["value"]["op"] == "c" && l["value"]["after"]["id"] == id
            )));
    }
    let paused = read_events(&out);
    assert!(paused <= at_pause + 20, "{at_pause} then {paused}");
    assert!(paused < ROWS as usize);

    // WHEN it is resumed, THEN chunks are read again
    db.client
        .batch_execute(&send("ctl-resume", "resume-snapshot"))
        .await
        .unwrap();
    assert!(wait_until(Duration::from_secs(30), || read_events(&out) > paused + 100));

    // WHEN it is stopped, THEN it ends before the table's end and the progress is gone
    db.client
        .batch_execute(&send("ctl-stop", "stop-snapshot"))
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || finished(&config, 1)
            && stored_progress(&w).is_none()),
        "{}",
        run_log(&config)
    );
    let stopped = read_events(&out);
    assert!(stopped < ROWS as usize, "the snapshot ran to its end");

    signal(&child, "TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "{}", run_log(&config));
    db.drop(&name).await;
}
