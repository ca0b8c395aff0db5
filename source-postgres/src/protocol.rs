//! A lean PostgreSQL replication transport on `postgres-protocol`: startup with
//! `replication=database`, authentication (SCRAM-SHA-256, MD5, cleartext), TLS, simple queries
//! for replication commands, and the CopyBoth stream read through a large buffer and parsed in
//! place. Published `tokio-postgres` has no replication support; see the crate docs for why this
//! exists rather than a replication crate.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use connector_core::{Error, ErrorKind, Result, Secret};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::config::{ConnInfo, SslMode};
use crate::error::{io_error, protocol_error, server_error, ServerError};
use crate::position::Lsn;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// Initial size of the stream's read buffer.
const READ_BUFFER_BYTES: usize = 1 << 20;
/// Compact the read buffer when less than this much room is left at its end.
const MIN_READ_ROOM: usize = 128 * 1024;
/// The longest message length accepted from the server (the length field counts itself, not
/// the tag). PostgreSQL builds every message in a buffer of at most 1 GiB (`MaxAllocSize`), so
/// a longer length is corrupt; buffers grow with the bytes that arrive, never to a length read
/// from the wire before its bytes are there.
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// The length field of the message header at the start of `b` (at least 5 bytes: tag, length),
/// checked to lie within 4..=[`MAX_MESSAGE_BYTES`].
#[inline]
fn message_len(b: &[u8], what: &str) -> Result<usize> {
    let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
    if !(4..=MAX_MESSAGE_BYTES).contains(&len) {
        return Err(protocol_error(format!(
            "{what}: message {:?} declares length {len}, outside 4..={MAX_MESSAGE_BYTES}",
            b[0] as char
        )));
    }
    Ok(len)
}

/// A TCP or TLS connection.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// Parse an `ErrorResponse`/`NoticeResponse` body.
pub fn parse_error_fields(mut body: &[u8]) -> ServerError {
    let mut e = ServerError::default();
    while let Some((&kind, rest)) = body.split_first() {
        if kind == 0 {
            break;
        }
        let end = memchr::memchr(0, rest).unwrap_or(rest.len());
        let value = String::from_utf8_lossy(&rest[..end]).into_owned();
        match kind {
            b'V' => e.severity = value,
            b'S' if e.severity.is_empty() => e.severity = value,
            b'C' => e.code = value,
            b'M' => e.message = value,
            b'D' => e.detail = Some(value),
            b'H' => e.hint = Some(value),
            _ => {}
        }
        body = rest.get(end + 1..).unwrap_or(&[]);
    }
    e
}

/// A replication connection before streaming: runs replication commands.
pub struct ReplConnection {
    stream: Stream,
    buf: BytesMut,
    out: BytesMut,
    /// `server_version_num`-like value from the `server_version` parameter (e.g. 150019).
    pub server_version: u32,
    what: String,
}

/// A row of a simple query result, as text.
pub type TextRow = Vec<Option<String>>;

impl ReplConnection {
    /// Connect, negotiate TLS, authenticate. `options` is the startup `options` parameter
    /// (`-c name=value ...`).
    pub async fn connect(
        conn: &ConnInfo,
        tls: Option<&Arc<ClientConfig>>,
        options: &str,
        application_name: &str,
    ) -> Result<ReplConnection> {
        let what = format!("replication connection to {}", conn.redacted());
        let tcp = tokio::time::timeout(
            conn.connect_timeout,
            TcpStream::connect((conn.host.as_str(), conn.port)),
        )
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                format!(
                    "{what}: no connection within {} ms",
                    conn.connect_timeout.as_millis()
                ),
            )
        })?
        .map_err(|e| io_error(e, &what))?;
        let _ = tcp.set_nodelay(true);
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(config) => negotiate_tls(tcp, conn, config, &what).await?,
        };
        let mut c = ReplConnection {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::with_capacity(1024),
            server_version: 0,
            what,
        };
        let fut = c.startup(conn, options, application_name);
        tokio::time::timeout(conn.connect_timeout.max(Duration::from_secs(1)), fut)
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    format!("{}: startup did not finish in time", c_what(conn)),
                )
            })??;
        Ok(c)
    }

    async fn startup(&mut self, conn: &ConnInfo, options: &str, app: &str) -> Result<()> {
        let mut params: Vec<(&str, &str)> = vec![
            ("user", conn.user.as_str()),
            ("database", conn.database.as_str()),
            ("replication", "database"),
            ("application_name", app),
            ("client_encoding", "UTF8"),
        ];
        if !options.is_empty() {
            params.push(("options", options));
        }
        self.out.clear();
        frontend::startup_message(params, &mut self.out)
            .map_err(|e| Error::internal("encoding the startup message").with_source(e))?;
        self.flush_out().await?;
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'R' => {
                    let code = read_i32(&body, 0)?;
                    match code {
                        0 => {}
                        3 => {
                            let pw = password(&conn.password, &self.what)?;
                            self.out.clear();
                            frontend::password_message(pw.as_bytes(), &mut self.out)
                                .map_err(|e| Error::internal("encoding").with_source(e))?;
                            self.flush_out().await?;
                        }
                        5 => {
                            let pw = password(&conn.password, &self.what)?;
                            let salt: [u8; 4] = body
                                .get(4..8)
                                .and_then(|s| s.try_into().ok())
                                .ok_or_else(|| protocol_error("short MD5 salt"))?;
                            let hash = postgres_protocol::authentication::md5_hash(
                                conn.user.as_bytes(),
                                pw.as_bytes(),
                                salt,
                            );
                            self.out.clear();
                            frontend::password_message(hash.as_bytes(), &mut self.out)
                                .map_err(|e| Error::internal("encoding").with_source(e))?;
                            self.flush_out().await?;
                        }
                        10 => {
                            let mechanisms: Vec<&[u8]> = body[4..]
                                .split(|b| *b == 0)
                                .filter(|m| !m.is_empty())
                                .collect();
                            if !mechanisms.contains(&SCRAM_SHA_256.as_bytes()) {
                                return Err(Error::new(
                                    ErrorKind::Authentication,
                                    format!(
                                        "{}: the server offers no supported SASL mechanism",
                                        self.what
                                    ),
                                ));
                            }
                            let pw = password(&conn.password, &self.what)?;
                            let s = ScramSha256::new(pw.as_bytes(), ChannelBinding::unsupported());
                            self.out.clear();
                            frontend::sasl_initial_response(
                                SCRAM_SHA_256,
                                s.message(),
                                &mut self.out,
                            )
                            .map_err(|e| Error::internal("encoding").with_source(e))?;
                            self.flush_out().await?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram
                                .as_mut()
                                .ok_or_else(|| protocol_error("SASL continue without SASL"))?;
                            s.update(&body[4..]).map_err(|e| {
                                Error::new(
                                    ErrorKind::Authentication,
                                    format!("{}: SCRAM", self.what),
                                )
                                .with_source(e)
                            })?;
                            self.out.clear();
                            frontend::sasl_response(s.message(), &mut self.out)
                                .map_err(|e| Error::internal("encoding").with_source(e))?;
                            self.flush_out().await?;
                        }
                        12 => {
                            let s = scram
                                .as_mut()
                                .ok_or_else(|| protocol_error("SASL final without SASL"))?;
                            s.finish(&body[4..]).map_err(|e| {
                                Error::new(
                                    ErrorKind::Authentication,
                                    format!("{}: the server's SCRAM proof is wrong", self.what),
                                )
                                .with_source(e)
                            })?;
                        }
                        other => {
                            return Err(Error::new(
                                ErrorKind::Authentication,
                                format!(
                                    "{}: unsupported authentication method (code {other})",
                                    self.what
                                ),
                            )
                            .with_hint("use scram-sha-256, md5 or password in pg_hba.conf"))
                        }
                    }
                }
                b'E' => return Err(server_error(parse_error_fields(&body), &self.what)),
                b'S' => {
                    let mut parts = body.split(|b| *b == 0);
                    if parts.next() == Some(b"server_version") {
                        if let Some(v) = parts.next() {
                            self.server_version = parse_server_version(&String::from_utf8_lossy(v));
                        }
                    }
                }
                b'K' | b'N' => {}
                b'Z' => return Ok(()),
                other => {
                    return Err(protocol_error(format!(
                        "{}: unexpected message {:?} during startup",
                        self.what, other as char
                    )))
                }
            }
        }
    }

    async fn flush_out(&mut self) -> Result<()> {
        self.stream
            .write_all(&self.out)
            .await
            .map_err(|e| io_error(e, &self.what))?;
        self.stream
            .flush()
            .await
            .map_err(|e| io_error(e, &self.what))
    }

    async fn read_message(&mut self) -> Result<(u8, bytes::Bytes)> {
        loop {
            if self.buf.len() >= 5 {
                let len = message_len(&self.buf, &self.what)?;
                if self.buf.len() > len {
                    let tag = self.buf[0];
                    let mut msg = self.buf.split_to(len + 1);
                    msg.advance(5);
                    return Ok((tag, msg.freeze()));
                }
                // Grow with what arrived (at most doubling), not to the declared length.
                let missing = len + 1 - self.buf.len();
                self.buf.reserve(missing.min(self.buf.len().max(64 * 1024)));
            }
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| io_error(e, &self.what))?;
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!("{}: the server closed the connection", self.what),
                ));
            }
        }
    }

    /// Run one command with the simple query protocol; rows as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<TextRow>> {
        self.out.clear();
        frontend::query(sql, &mut self.out)
            .map_err(|e| Error::internal("encoding a query").with_source(e))?;
        self.flush_out().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'D' => rows.push(parse_data_row(&body)?),
                b'E' => error = Some(parse_error_fields(&body)),
                b'N' => {
                    let n = parse_error_fields(&body);
                    info!(notice = %n.message, "server notice");
                }
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(server_error(e, format!("{}: {sql}", self.what))),
            None => Ok(rows),
        }
    }

    /// Send `START_REPLICATION ...` and switch to streaming.
    pub async fn start_replication(mut self, sql: &str) -> Result<(ReplReader, ReplWriter)> {
        self.out.clear();
        frontend::query(sql, &mut self.out)
            .map_err(|e| Error::internal("encoding a query").with_source(e))?;
        self.flush_out().await?;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'W' => break,
                b'E' => {
                    let e = parse_error_fields(&body);
                    return Err(server_error(e, format!("{}: {sql}", self.what)));
                }
                b'N' => {
                    let n = parse_error_fields(&body);
                    info!(notice = %n.message, "server notice");
                }
                other => {
                    return Err(protocol_error(format!(
                        "{}: unexpected message {:?} after START_REPLICATION",
                        self.what, other as char
                    )))
                }
            }
        }
        debug!(what = %self.what, "streaming started");
        let leftover = std::mem::take(&mut self.buf);
        let (rd, wr) = tokio::io::split(self.stream);
        let mut buf = vec![0u8; READ_BUFFER_BYTES.max(leftover.len() * 2)];
        buf[..leftover.len()].copy_from_slice(&leftover);
        Ok((
            ReplReader {
                rd,
                buf,
                start: 0,
                end: leftover.len(),
                what: self.what.clone(),
            },
            ReplWriter {
                wr,
                buf: Vec::with_capacity(64),
                what: self.what,
            },
        ))
    }
}

fn c_what(conn: &ConnInfo) -> String {
    format!("replication connection to {}", conn.redacted())
}

async fn negotiate_tls(
    mut tcp: TcpStream,
    conn: &ConnInfo,
    config: &Arc<ClientConfig>,
    what: &str,
) -> Result<Stream> {
    let mut out = BytesMut::new();
    frontend::ssl_request(&mut out);
    tcp.write_all(&out).await.map_err(|e| io_error(e, what))?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)
        .await
        .map_err(|e| io_error(e, what))?;
    match answer[0] {
        b'S' => {
            let name = crate::tls::server_name(&conn.host)?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Connection,
                        format!("{what}: TLS handshake failed: {e}"),
                    )
                    .with_source(e)
                    .with_hint("check `source.sslmode` and `source.sslrootcert`")
                })?;
            Ok(Stream::Tls(Box::new(tls)))
        }
        b'N' if conn.sslmode == SslMode::Prefer => Ok(Stream::Plain(tcp)),
        b'N' => Err(Error::new(
            ErrorKind::Precondition,
            format!("{what}: the server does not accept TLS connections"),
        )
        .with_hint("enable ssl on the server, or set `source.sslmode: prefer` or `disable`")),
        other => Err(protocol_error(format!(
            "{what}: unexpected answer {other:?} to the TLS request"
        ))),
    }
}

fn password<'a>(p: &'a Option<Secret>, what: &str) -> Result<&'a str> {
    p.as_ref().map(Secret::expose).ok_or_else(|| {
        Error::new(
            ErrorKind::Authentication,
            format!("{what}: the server asks for a password and none is configured"),
        )
        .with_hint("set `source.password`, `source.password_file` or CDC_SOURCE__PASSWORD")
    })
}

fn read_i32(b: &[u8], at: usize) -> Result<i32> {
    b.get(at..at + 4)
        .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| protocol_error("message too short"))
}

fn parse_data_row(body: &[u8]) -> Result<TextRow> {
    let n = body
        .get(..2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]) as usize)
        .ok_or_else(|| protocol_error("short DataRow"))?;
    let mut at = 2;
    let mut row = Vec::with_capacity(n);
    for _ in 0..n {
        let len = read_i32(body, at)?;
        at += 4;
        if len < 0 {
            row.push(None);
        } else {
            let end = at + len as usize;
            let v = body
                .get(at..end)
                .ok_or_else(|| protocol_error("short DataRow"))?;
            row.push(Some(String::from_utf8_lossy(v).into_owned()));
            at = end;
        }
    }
    Ok(row)
}

/// `15.19 (Debian ...)` → 150019; `9.6.24` → 90624.
pub fn parse_server_version(v: &str) -> u32 {
    let nums: Vec<u32> = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .filter_map(|s| s.parse().ok())
        .collect();
    match nums.as_slice() {
        [major, minor, ..] if *major >= 10 => major * 10_000 + minor,
        [major, minor, patch] => major * 10_000 + minor * 100 + patch,
        [major, minor] => major * 10_000 + minor * 100,
        [major] => major * 10_000,
        _ => 0,
    }
}

/// The read half of a streaming replication connection.
pub struct ReplReader {
    rd: ReadHalf<Stream>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    what: String,
}

impl ReplReader {
    /// The next complete message in the buffer (tag and body range), without reading.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<(u8, Range<usize>)>> {
        let avail = self.end - self.start;
        if avail < 5 {
            return Ok(None);
        }
        let b = &self.buf[self.start..self.end];
        let len = message_len(b, &self.what)?;
        if avail < len + 1 {
            return Ok(None);
        }
        let tag = b[0];
        let range = self.start + 5..self.start + 1 + len;
        self.start += len + 1;
        Ok(Some((tag, range)))
    }

    /// The bytes of a frame returned by [`ReplReader::next_frame`] (valid until the next fill).
    #[inline]
    pub fn frame(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Read more from the socket (at least one byte), making room first.
    pub async fn fill(&mut self) -> Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < MIN_READ_ROOM {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // A message longer than the buffer: grow to hold it whole, doubling when the buffer is
        // full of it (so memory follows the bytes received, not the length declared).
        if self.end - self.start >= 5 {
            let need = message_len(&self.buf[self.start..self.end], &self.what)? + 1;
            if self.start + need > self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if need > self.buf.len() && self.end == self.buf.len() {
                    self.buf.resize(need.min(self.buf.len() * 2), 0);
                }
            }
        }
        let n = self
            .rd
            .read(&mut self.buf[self.end..])
            .await
            .map_err(|e| io_error(e, &self.what))?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::Connection,
                format!("{}: the server closed the replication stream", self.what),
            ));
        }
        self.end += n;
        // Give memory back after a huge message.
        if self.buf.len() > 4 * READ_BUFFER_BYTES && self.end - self.start < READ_BUFFER_BYTES / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            self.buf.truncate(READ_BUFFER_BYTES);
            self.buf.shrink_to_fit();
        }
        Ok(())
    }

    /// What this connection is, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }
}

/// The write half of a streaming replication connection: standby status updates.
pub struct ReplWriter {
    wr: WriteHalf<Stream>,
    buf: Vec<u8>,
    what: String,
}

impl ReplWriter {
    /// Send a standby status update reporting `lsn` written, flushed and applied.
    pub async fn send_status(&mut self, lsn: Lsn, reply_requested: bool) -> Result<()> {
        let now = connector_core::runtime::now_micros() - PG_EPOCH_OFFSET_US;
        self.buf.clear();
        self.buf.push(b'd');
        self.buf.extend_from_slice(&38i32.to_be_bytes());
        self.buf.push(b'r');
        for _ in 0..3 {
            self.buf.extend_from_slice(&lsn.0.to_be_bytes());
        }
        self.buf.extend_from_slice(&now.to_be_bytes());
        self.buf.push(u8::from(reply_requested));
        self.wr
            .write_all(&self.buf)
            .await
            .map_err(|e| io_error(e, &self.what))?;
        self.wr.flush().await.map_err(|e| io_error(e, &self.what))
    }

    /// End the stream politely (CopyDone, Terminate); errors are only logged.
    pub async fn close(&mut self) {
        let mut out = BytesMut::new();
        frontend::copy_done(&mut out);
        frontend::terminate(&mut out);
        if let Err(e) = self.wr.write_all(&out).await {
            warn!(error = %e, "closing the replication stream");
        }
        let _ = self.wr.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// The unit tests' allocator: records the largest allocation of each thread and refuses
    /// any over 256 MiB (the test binary aborts), so a length read from the wire that sizes an
    /// allocation fails the test instead of taking the machine's memory.
    struct Probe;

    const REFUSED_BYTES: usize = 256 << 20;

    thread_local! {
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }

    fn note(n: usize) -> bool {
        let _ = LARGEST.try_with(|c| c.set(c.get().max(n)));
        n <= REFUSED_BYTES
    }

    unsafe impl GlobalAlloc for Probe {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            if note(l.size()) {
                System.alloc(l)
            } else {
                std::ptr::null_mut()
            }
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            if note(l.size()) {
                System.alloc_zeroed(l)
            } else {
                std::ptr::null_mut()
            }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            if note(new) {
                System.realloc(p, l, new)
            } else {
                std::ptr::null_mut()
            }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            System.dealloc(p, l)
        }
    }

    #[global_allocator]
    static PROBE: Probe = Probe;

    /// A connected pair of local sockets: our side as a [`Stream`], the peer's as a TcpStream.
    async fn socket_pair() -> (Stream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (ours, theirs) = tokio::join!(TcpStream::connect(addr), l.accept());
        (Stream::Plain(ours.unwrap()), theirs.unwrap().0)
    }

    #[tokio::test]
    async fn a_huge_declared_length_is_an_error_not_an_allocation() {
        // GIVEN a server whose stream message declares 0xFFFFFFFF bytes and sends 64
        let (ours, mut server) = socket_pair().await;
        let mut msg = b"d\xff\xff\xff\xff".to_vec();
        msg.extend_from_slice(&[0u8; 64]);
        server.write_all(&msg).await.unwrap();
        let (rd, _wr) = tokio::io::split(ours);
        let mut reader = ReplReader {
            rd,
            buf: vec![0u8; 4096],
            start: 0,
            end: 0,
            what: "test stream".into(),
        };
        LARGEST.with(|c| c.set(0));
        // WHEN the reader reads and frames it
        let mut result = Ok(None);
        for _ in 0..2 {
            reader.fill().await.unwrap();
            result = reader.next_frame();
            if result.is_err() {
                break;
            }
        }
        // THEN it is a protocol error naming the length, and nothing was sized by it
        let e = result.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.to_string().contains("declares length 4294967295"), "{e}");
        assert!(LARGEST.with(Cell::get) < 1 << 20);

        // AND the same for a message before streaming (a 2 GiB length)
        let (ours, mut server) = socket_pair().await;
        server.write_all(b"Z\x7f\xff\xff\xffI").await.unwrap();
        let mut conn = ReplConnection {
            stream: ours,
            buf: BytesMut::new(),
            out: BytesMut::new(),
            server_version: 0,
            what: "test connection".into(),
        };
        LARGEST.with(|c| c.set(0));
        let e = conn.read_message().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.to_string().contains("declares length 2147483647"), "{e}");
        assert!(LARGEST.with(Cell::get) < 1 << 20);
    }

    #[tokio::test]
    async fn a_long_message_arriving_in_pieces_grows_the_buffer_with_its_bytes() {
        // GIVEN a 300 KiB CopyData message sent in two halves, the second held back
        let (ours, mut server) = socket_pair().await;
        let body = vec![7u8; 300 * 1024];
        let mut msg = vec![b'd'];
        msg.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        msg.extend_from_slice(&body);
        let (first, second) = msg.split_at(100 * 1024);
        server.write_all(first).await.unwrap();
        let (rd, _wr) = tokio::io::split(ours);
        let mut reader = ReplReader {
            rd,
            buf: vec![0u8; 16 * 1024],
            start: 0,
            end: 0,
            what: "test stream".into(),
        };
        // WHEN the first half is read
        while reader.end < first.len() {
            reader.fill().await.unwrap();
            assert!(reader.next_frame().unwrap().is_none());
        }
        // THEN the buffer holds at most twice what arrived
        assert!(reader.buf.len() <= 2 * first.len(), "{}", reader.buf.len());
        // AND once the rest arrives the message comes out whole
        server.write_all(second).await.unwrap();
        let frame = loop {
            if let Some(f) = reader.next_frame().unwrap() {
                break f;
            }
            reader.fill().await.unwrap();
        };
        assert_eq!(frame.0, b'd');
        assert_eq!(reader.frame(frame.1), &body[..]);
    }

    #[test]
    fn server_versions_parse() {
        assert_eq!(
            parse_server_version("15.19 (Debian 15.19-0+deb12u1)"),
            150019
        );
        assert_eq!(parse_server_version("9.6.24"), 90624);
        assert_eq!(parse_server_version("17beta1"), 170001);
    }

    #[test]
    fn error_fields_parse() {
        let body = b"SERROR\0VERROR\0C28P01\0Mpassword authentication failed\0\0";
        let e = parse_error_fields(body);
        assert_eq!(e.code, "28P01");
        assert_eq!(e.severity, "ERROR");
        assert_eq!(e.message, "password authentication failed");
    }
}
