//! Request lines and headers up to 1 MiB, as Go's `net/http` (the original server) accepts them.
//!
//! hyper refuses a request target longer than 65,534 bytes with a bodiless 414, whatever its buffer size,
//! while a job that watches a few thousand apps sends `polls` URLs of 100 KB and more. So every connection
//! reads through a [`HeadRewriter`]: it collects each request head (up to [`MAX_HEAD_BYTES`]), and when
//! the target is too long for hyper it moves the query string into the [`QUERY_HEADER`] header, where the
//! API's parameter binding reads it (`api::extract::query_of`; the `http` crate cannot hold such a URI
//! either, so it cannot go back into the URI).
//!
//! Invariants:
//! - Bytes reach hyper unchanged except for heads whose target hyper would refuse; bodies are never
//!   touched. Message boundaries are tracked from `Content-Length` and chunked framing, so keep-alive and
//!   pipelined requests are rewritten too.
//! - Anything the rewriter does not understand (a head that does not parse, too many headers, an
//!   upgrade, conflicting lengths) is handed to hyper as is, and the rest of the connection passes through
//!   untouched: hyper answers it as it would without the rewriter (400, 431, ...).
//! - A head longer than [`MAX_HEAD_BYTES`] is answered 431 and the connection closed: hyper is handed a
//!   stand-in head with more header fields than it accepts (which it answers 431), and nothing after it.
//! - A client-sent [`QUERY_HEADER`] is dropped from heads the rewriter rewrites; on other requests the
//!   binding only reads it when the URI has no query, so a client can affect nothing but its own request.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request head (request line and headers) accepted; longer ones are answered 431.
pub const MAX_HEAD_BYTES: usize = 1 << 20;
/// hyper's buffer: a head longer than [`MAX_HEAD_BYTES`] overflows it (431) before it is complete.
pub const HYPER_BUFFER_BYTES: usize = MAX_HEAD_BYTES + 8 * 1024;
/// Header carrying the query of a request whose target was too long for hyper (read by the API's binding).
pub const QUERY_HEADER: &str = crate::service::headers::LONG_QUERY_HEADER;
/// Longest request target hyper accepts (`MAX_URI_LEN` in hyper's h1 parser).
const HYPER_MAX_TARGET: usize = u16::MAX as usize - 1;
/// Most header fields parsed here; more are left to hyper (which refuses beyond its own limit).
const MAX_HEADERS: usize = 256;
/// Read size from the socket while collecting a head.
const READ_CHUNK: usize = 16 * 1024;

/// How the bytes after the current point are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// A request head is next.
    Head,
    /// This many body bytes, then a head.
    Body(u64),
    /// A chunked body, in the given state.
    Chunked(Chunk),
    /// The rest of the connection passes through untouched.
    Opaque,
    /// A head over the limit: hyper is handed a head it refuses with 431, the rest is dropped.
    Refused,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In a chunk-size line (`hex[;ext]\r\n`); the size so far, and whether an extension started.
    Size { size: u64, digits: u32, in_ext: bool },
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// The CRLF after chunk data.
    DataEnd,
    /// Trailer lines after the last chunk; `true` at the start of a line.
    Trailers { line_start: bool },
}

/// A connection's reading side with heads rewritten for hyper (see the module docs).
pub struct HeadRewriter<T> {
    inner: T,
    framing: Framing,
    /// Bytes read from the socket and not yet passed on (a partial head, or what followed one).
    input: BytesMut,
    /// Bytes ready for hyper.
    ready: BytesMut,
    eof: bool,
}

impl<T> HeadRewriter<T> {
    /// Wrap a connection.
    pub fn new(inner: T) -> Self {
        Self { inner, framing: Framing::Head, input: BytesMut::new(), ready: BytesMut::new(), eof: false }
    }

    /// Move what can be decided from `input` to `ready`.
    fn process(&mut self) {
        while !self.input.is_empty() {
            match self.framing {
                Framing::Opaque => {
                    let all = self.input.split();
                    self.ready.extend_from_slice(&all);
                }
                Framing::Refused => self.input.clear(),
                Framing::Body(0) => self.framing = Framing::Head,
                Framing::Body(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(self.input.len());
                    let body = self.input.split_to(n);
                    self.ready.extend_from_slice(&body);
                    self.framing = Framing::Body(left - n as u64);
                }
                Framing::Chunked(state) => {
                    let (used, next) = chunked(state, &self.input);
                    let body = self.input.split_to(used);
                    self.ready.extend_from_slice(&body);
                    self.framing = next;
                }
                Framing::Head => {
                    if !self.take_head() {
                        return;
                    }
                }
            }
        }
        if self.framing == Framing::Body(0) {
            self.framing = Framing::Head;
        }
    }

    /// Move one complete head (rewritten if need be) to `ready`; false if it is not complete yet.
    fn take_head(&mut self) -> bool {
        // Empty lines before a request line are allowed (and ignored by hyper).
        let blank = self.input.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
        if blank > 0 {
            let lines = self.input.split_to(blank);
            self.ready.extend_from_slice(&lines);
            return true;
        }
        let end = head_end(&self.input);
        if end.unwrap_or(self.input.len()) > MAX_HEAD_BYTES {
            self.input.clear();
            self.ready.extend_from_slice(&too_large_head());
            self.framing = Framing::Refused;
            return true;
        }
        let Some(end) = end else {
            if self.input.len() > MAX_HEAD_BYTES {
                self.input.clear();
                self.ready.extend_from_slice(&too_large_head());
                self.framing = Framing::Refused;
                return true;
            }
            if self.eof {
                // Cut off: hyper decides what to say.
                self.framing = Framing::Opaque;
                return true;
            }
            return false;
        };
        let head = self.input.split_to(end);
        let (bytes, framing) = rewrite_head(&head);
        self.ready.extend_from_slice(bytes.as_deref().unwrap_or(&head));
        self.framing = framing;
        true
    }
}

/// A head hyper answers 431 (more header fields than its limit of 100) and then closes the connection on.
fn too_large_head() -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    for _ in 0..2 * MAX_HEADERS {
        head.extend_from_slice(b"x: y\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// The length of the head at the start of `input` (through its blank line), if it is complete.
fn head_end(input: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(nl) = input[at..].iter().position(|b| *b == b'\n') {
        let next = at + nl + 1;
        match input.get(next) {
            Some(b'\n') => return Some(next + 1),
            Some(b'\r') if input.get(next + 1) == Some(&b'\n') => return Some(next + 2),
            Some(_) => at = next,
            None => return None,
        }
    }
    None
}

/// The head to hand to hyper (`None`: unchanged) and the framing of what follows it.
fn rewrite_head(head: &[u8]) -> (Option<Vec<u8>>, Framing) {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return (None, Framing::Opaque),
    }
    let framing = framing_of(&request);
    let (Some(method), Some(target), Some(version)) = (request.method, request.path, request.version) else {
        return (None, Framing::Opaque);
    };
    if target.len() <= HYPER_MAX_TARGET {
        return (None, framing);
    }
    let Some((path, query)) = target.split_once('?') else { return (None, framing) };
    if path.len() > HYPER_MAX_TARGET {
        return (None, framing);
    }
    let mut out = Vec::with_capacity(head.len() + QUERY_HEADER.len() + 4);
    out.extend_from_slice(format!("{method} {path} HTTP/1.{version}\r\n").as_bytes());
    for field in request.headers.iter().filter(|h| !h.name.eq_ignore_ascii_case(QUERY_HEADER)) {
        out.extend_from_slice(field.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(field.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(QUERY_HEADER.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(query.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    (Some(out), framing)
}

/// How the body after a parsed head is framed (RFC 9112 §6.3, for requests).
fn framing_of(request: &httparse::Request<'_, '_>) -> Framing {
    let header = |name: &'static str| request.headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name));
    if request.method == Some("CONNECT") || header("upgrade").next().is_some() {
        return Framing::Opaque;
    }
    if let Some(te) = header("transfer-encoding").next_back() {
        let chunked = std::str::from_utf8(te.value)
            .ok()
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        return if chunked {
            Framing::Chunked(Chunk::Size { size: 0, digits: 0, in_ext: false })
        } else {
            Framing::Opaque
        };
    }
    let mut length = None;
    for field in header("content-length") {
        let parsed = std::str::from_utf8(field.value).ok().and_then(|v| v.trim().parse::<u64>().ok());
        match (parsed, length) {
            (None, _) => return Framing::Opaque,
            (Some(n), Some(seen)) if n != seen => return Framing::Opaque,
            (Some(n), _) => length = Some(n),
        }
    }
    Framing::Body(length.unwrap_or(0))
}

/// Walk a chunked body from `state` over `input`: how many bytes belong to it, and the framing after them.
fn chunked(mut state: Chunk, input: &[u8]) -> (usize, Framing) {
    let mut used = 0;
    while used < input.len() {
        let byte = input[used];
        match state {
            Chunk::Data(left) => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len() - used);
                used += n;
                let left = left - n as u64;
                state = if left == 0 { Chunk::DataEnd } else { Chunk::Data(left) };
                continue;
            }
            Chunk::DataEnd => {
                used += 1;
                if byte == b'\n' {
                    state = Chunk::Size { size: 0, digits: 0, in_ext: false };
                }
            }
            Chunk::Size { size, digits, in_ext } => {
                used += 1;
                match byte {
                    b'\n' if size == 0 => state = Chunk::Trailers { line_start: true },
                    b'\n' => state = Chunk::Data(size),
                    _ if in_ext || byte == b'\r' => {}
                    b';' | b' ' | b'\t' => state = Chunk::Size { size, digits, in_ext: true },
                    _ => match (byte as char).to_digit(16) {
                        Some(d) if digits < 15 => {
                            state = Chunk::Size { size: size * 16 + u64::from(d), digits: digits + 1, in_ext }
                        }
                        // Not a chunk size we can follow: let hyper judge the rest.
                        _ => return (input.len(), Framing::Opaque),
                    },
                }
            }
            Chunk::Trailers { line_start } => {
                used += 1;
                match byte {
                    b'\n' if line_start => return (used, Framing::Head),
                    b'\n' => state = Chunk::Trailers { line_start: true },
                    b'\r' => {}
                    _ => state = Chunk::Trailers { line_start: false },
                }
            }
        }
    }
    (used, Framing::Chunked(state))
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadRewriter<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.input.is_empty() && this.eof {
                return Poll::Ready(Ok(()));
            }
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if this.framing == Framing::Refused {
                return Poll::Ready(Ok(()));
            }
            // Bodies and opaque streams go straight into hyper's buffer when nothing is pending.
            if this.input.is_empty() {
                match this.framing {
                    Framing::Opaque => return Pin::new(&mut this.inner).poll_read(cx, buf),
                    Framing::Body(left) if left > 0 => {
                        let limit = usize::try_from(left).unwrap_or(usize::MAX).min(buf.remaining());
                        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(limit));
                        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
                        let n = limited.filled().len();
                        buf.advance(n);
                        if n == 0 {
                            this.eof = true;
                        }
                        this.framing = Framing::Body(left - n as u64);
                        return Poll::Ready(Ok(()));
                    }
                    _ => {}
                }
            }
            this.process();
            if !this.ready.is_empty() {
                continue;
            }
            if this.eof {
                // A partial head at the end of the stream: hand it over as is.
                let rest = this.input.split();
                this.ready.extend_from_slice(&rest);
                continue;
            }
            this.input.reserve(READ_CHUNK);
            if std::task::ready!(tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.input))? == 0 {
                this.eof = true;
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadRewriter<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// Feed `input` in pieces of `piece` bytes and return what hyper would read.
    async fn through(input: &[u8], piece: usize) -> Vec<u8> {
        let mut builder = tokio_test_io(input, piece);
        let mut out = Vec::new();
        HeadRewriter::new(&mut builder).read_to_end(&mut out).await.unwrap();
        out
    }

    fn tokio_test_io(input: &[u8], piece: usize) -> impl AsyncRead + Unpin + '_ {
        // A reader that returns at most `piece` bytes per read, like a slow socket.
        struct Pieces<'a>(&'a [u8], usize);
        impl AsyncRead for Pieces<'_> {
            fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                let n = self.1.min(self.0.len()).min(buf.remaining());
                buf.put_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Poll::Ready(Ok(()))
            }
        }
        Pieces(input, piece)
    }

    #[tokio::test]
    async fn short_requests_pass_unchanged_in_any_pieces() {
        let stream = b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /c HTTP/1.1\r\n\r\n";
        for piece in [1, 3, 7, 1000] {
            assert_eq!(through(stream, piece).await, stream.to_vec(), "piece {piece}");
        }
    }

    #[tokio::test]
    async fn a_long_target_moves_its_query_into_a_header_on_every_request_of_the_connection() {
        let query = format!("appid={}", "a".repeat(100_000));
        let long = format!("GET /discovery/polls?{query} HTTP/1.1\r\nHost: h\r\n\r\n");
        let body = "POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        let stream = format!("{long}{body}{long}");
        let out = String::from_utf8(through(stream.as_bytes(), 4096).await).unwrap();
        let rewritten = format!("GET /discovery/polls HTTP/1.1\r\nHost: h\r\n{QUERY_HEADER}: {query}\r\n\r\n");
        assert_eq!(out, format!("{rewritten}{body}{rewritten}"));
    }

    #[tokio::test]
    async fn chunked_bodies_are_followed_to_the_next_head() {
        let query = "q=".to_string() + &"b".repeat(70_000);
        let chunked = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nGET \r\n0\r\nX-T: 1\r\n\r\n";
        let long = format!("GET /p?{query} HTTP/1.1\r\n\r\n");
        let out = String::from_utf8(through(format!("{chunked}{long}").as_bytes(), 5).await).unwrap();
        assert_eq!(out, format!("{chunked}GET /p HTTP/1.1\r\n{QUERY_HEADER}: {query}\r\n\r\n"));
    }

    #[tokio::test]
    async fn what_does_not_parse_passes_through_untouched() {
        let garbage = b"\x16\x03\x01 not http at all\r\n\r\nGET /p?".to_vec();
        assert_eq!(through(&garbage, 10).await, garbage);
        let too_long = format!("GET /p?{} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", "c".repeat(MAX_HEAD_BYTES + 10));
        let out = through(too_long.as_bytes(), 65536).await;
        assert!(out == too_large_head(), "a stand-in and nothing after it, got {} bytes", out.len());
        let unfinished = format!("GET /p?{}", "c".repeat(MAX_HEAD_BYTES + 10));
        let out = through(unfinished.as_bytes(), 65536).await;
        assert!(out == too_large_head(), "refused before the head ends, got {} bytes", out.len());
    }

    #[test]
    fn heads_end_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nrest"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }
}
