//! The event reader: opens the binlog stream as a replica and reads its events on a task of
//! their own, verifying checksums and treating a silent connection as lost.

use std::time::Duration;

use connector_core::{Error, ErrorKind, Result};
use futures_util::StreamExt as _;
use mysql_async::binlog::events::Event;
use mysql_async::BinlogStreamRequest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

use super::server::{connect, exec, Flavor, ServerInfo};
use crate::config::Settings;
use crate::error::classify;
use crate::position::{BinlogPosition, GtidSet};

/// Open a binlog stream from `from`, by GTID when `use_gtid`, and start a task that reads it.
pub async fn open_stream(
    settings: &Settings,
    info: &ServerInfo,
    from: &BinlogPosition,
    use_gtid: bool,
) -> Result<EventReader> {
    let mut conn = connect(settings).await?;
    let hb_ns = settings.config.heartbeat_interval_ms * 1_000_000;
    exec(
        &mut conn,
        &format!("SET @master_heartbeat_period = {hb_ns}"),
    )
    .await?;
    // While the pipeline applies backpressure this connection is not read; keep the server from
    // dropping it after the default 60 s.
    exec(&mut conn, "SET SESSION net_write_timeout = 3600").await?;
    let file = from.file.clone().into_bytes();
    let mut request = BinlogStreamRequest::new(settings.server_id);
    let mut sids = Vec::new();
    match info.flavor {
        Flavor::MariaDb => {
            exec(&mut conn, "SET @mariadb_slave_capability = 4").await?;
            if use_gtid {
                let gtids = from.gtids.clone().unwrap_or_default();
                exec(
                    &mut conn,
                    &format!("SET @slave_connect_state = '{}'", gtids.replace('\'', "")),
                )
                .await?;
                exec(&mut conn, "SET @slave_gtid_strict_mode = 0").await?;
                exec(&mut conn, "SET @slave_gtid_ignore_duplicates = 0").await?;
            }
        }
        Flavor::MySql => {
            if use_gtid {
                let set = GtidSet::parse(from.gtids.as_deref().unwrap_or(""), false)?;
                for (uuid, ivs) in set.mysql_intervals() {
                    let mut sid = mysql_async::Sid::new(uuid);
                    for (a, b) in ivs {
                        sid = sid.with_interval(mysql_async::GnoInterval::new(a, b + 1));
                    }
                    sids.push(sid);
                }
            }
        }
    }
    if use_gtid && info.flavor == Flavor::MySql {
        request = request.with_gtid().with_gtid_set(sids);
    } else if !use_gtid {
        request = request.with_filename(&file).with_pos(from.pos);
    }
    let connection_id = conn.id();
    let stream = conn.get_binlog_stream(request).await.map_err(|e| {
        classify(e, &format!("requesting the binlog from {}", from)).context(&settings.address)
    })?;
    let silence = silence_timeout(settings.config.heartbeat_interval_ms);
    let (tx, rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
    let task = tokio::spawn(read_events(stream, tx, silence));
    Ok(EventReader {
        rx,
        task,
        connection_id,
    })
}

/// How long the binlog connection may stay silent (no event, no heartbeat) before it is treated
/// as lost: three heartbeat intervals, at least 5 s.
pub fn silence_timeout(heartbeat_interval_ms: u64) -> Duration {
    Duration::from_millis((heartbeat_interval_ms * 3).max(5_000))
}

/// Raw events buffered between the reading task and the decoder.
const EVENT_CHANNEL_CAPACITY: usize = 512;

/// The reading task's handle and its events.
pub struct EventReader {
    /// Events in binlog order, or the error that ended the stream.
    pub rx: mpsc::Receiver<Result<Event>>,
    task: JoinHandle<()>,
    /// The server's id of the binlog connection (`KILL`-able, in the process list).
    pub connection_id: u32,
}

impl Drop for EventReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_events(
    mut stream: mysql_async::BinlogStream,
    tx: mpsc::Sender<Result<Event>>,
    silence: Duration,
) {
    loop {
        let next = tokio::select! {
            _ = tx.closed() => return,
            n = tokio::time::timeout(silence, stream.next()) => n,
        };
        let item = match next {
            Err(_) => Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "the binlog connection was silent for {} s (no event and no heartbeat)",
                    silence.as_secs()
                ),
            )),
            Ok(None) => Err(Error::new(
                ErrorKind::Connection,
                "the server ended the binlog stream",
            )),
            Ok(Some(Err(e))) => Err(classify(e, "reading the binlog")),
            Ok(Some(Ok(ev))) => verify_checksum(&ev).map(|()| ev),
        };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// Verify an event's CRC32 checksum (when the server writes them; `binlog_checksum=CRC32`).
pub fn verify_checksum(ev: &Event) -> Result<()> {
    let footer = ev.footer();
    if !footer.get_checksum_enabled() {
        return Ok(());
    }
    let Ok(Some(alg)) = footer.get_checksum_alg() else {
        return Ok(());
    };
    if alg != mysql_async::binlog::BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32 {
        return Ok(());
    }
    let Some(stored) = ev.checksum() else {
        return Ok(());
    };
    let stored = u32::from_le_bytes(stored);
    let computed = ev.calc_checksum(alg);
    if stored != computed {
        return Err(Error::new(
            ErrorKind::Connection,
            format!(
                "binlog event checksum mismatch (type {}, end position {}): stored {stored:#010x}, \
                 computed {computed:#010x}",
                ev.header().event_type_raw(),
                ev.header().log_pos()
            ),
        ));
    }
    Ok(())
}

/// Log at debug how a stream was opened.
pub fn log_open(from: &BinlogPosition, gtid: bool) {
    debug!(position = %from, gtid, "opening the binlog stream");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::event_type as et;
    use mysql_async::binlog::events::FormatDescriptionEvent;
    use mysql_async::binlog::BinlogVersion;

    #[test]
    fn crc32_checksums_are_verified() {
        use mysql_async::binlog::events::BinlogEventFooter;
        use mysql_async::binlog::BinlogChecksumAlg;
        // GIVEN a reader whose format description says events end with a CRC32
        let alg = BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32;
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4)
            .with_footer(BinlogEventFooter::new(alg));
        let build = |checksum: u32, body: &[u8]| {
            let mut v = Vec::new();
            v.extend_from_slice(&1_700_000_000u32.to_le_bytes());
            v.push(et::XID);
            v.extend_from_slice(&7u32.to_le_bytes());
            v.extend_from_slice(&((19 + body.len() + 4) as u32).to_le_bytes());
            v.extend_from_slice(&100u32.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(body);
            v.extend_from_slice(&checksum.to_le_bytes());
            Event::read(&fde, &v[..]).unwrap()
        };
        let body = 9u64.to_le_bytes();
        let good = build(0, &body).calc_checksum(alg);
        // WHEN the stored checksum matches THEN the event passes
        verify_checksum(&build(good, &body)).unwrap();
        // AND WHEN a byte changed on the way THEN it is a (retryable) error
        let e = verify_checksum(&build(good, &8u64.to_le_bytes())).unwrap_err();
        assert!(e.message().contains("checksum mismatch"), "{e}");
        assert!(e.is_retryable());
    }
}
