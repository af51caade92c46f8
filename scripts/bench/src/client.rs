//! A lean HTTP/1.1 keep-alive client (hyper's connection API: one TCP connection, requests in sequence)
//! and the success rules of the two APIs measured.
//!
//! Why not `discovery::client` for the load: the generator shares the cores with the servers it measures,
//! so its hot loops send pre-rendered request bytes and read only the envelope's code; the library client
//! (reqwest, a typed decoding of every answer, node failover) would take CPU from the servers and lower
//! the figures it is meant to measure. Its other use here is etcd's gateway, which the library does not
//! speak. Everything else a tool asks a discovery node (status, digest, health, snapshots) goes through
//! the library's client: [`discovery_client`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::BoxError;

/// Content type of the bilibili/discovery write API.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// Where a URL points: the loopback socket, the `Host` header and the request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Resolved socket address (always loopback).
    pub addr: SocketAddr,
    /// `host:port` as written.
    pub authority: String,
    /// Path and query (`/` when absent).
    pub target: String,
}

impl Url {
    /// Parse `http://host:port/path?query`; refuses anything but plain HTTP to a loopback address.
    pub fn parse(url: &str) -> Result<Url, BoxError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (authority, target) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        let addr = resolve_loopback(authority)?;
        Ok(Url { addr, authority: authority.to_string(), target: target.to_string() })
    }
}

/// Resolve `host:port` and insist on a loopback address: this tool never sends traffic elsewhere.
pub fn resolve_loopback(authority: &str) -> Result<SocketAddr, BoxError> {
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: resolves to no address"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{authority}: not a loopback address; discovery-bench only talks to loopback").into());
    }
    Ok(addr)
}

/// The library's typed client of one discovery node (loopback only, like everything this tool sends).
pub fn discovery_client(node: &str, timeout: Duration) -> Result<discovery::client::Client, BoxError> {
    resolve_loopback(node)?;
    Ok(discovery::client::Client::builder([node]).call_timeout(timeout).build())
}

/// One keep-alive connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Open a connection (TCP_NODELAY) and drive it on its own task.
    pub async fn connect(addr: SocketAddr) -> Result<Conn, BoxError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender })
    }

    /// Send one request and read the whole answer.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), BoxError> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Build a request for `target` on `authority`.
pub fn request(
    method: &Method,
    authority: &str,
    target: &str,
    content_type: Option<&str>,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, BoxError> {
    let mut builder = Request::builder().method(method.clone()).uri(target).header(HOST, authority);
    if let Some(content_type) = content_type {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    Ok(builder.body(Full::new(body))?)
}

/// One request on a fresh connection, bounded by `timeout` (control traffic of the tools, not load).
pub async fn once(
    method: Method,
    url: &Url,
    content_type: Option<&str>,
    body: Bytes,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), BoxError> {
    let work = async {
        let mut conn = Conn::connect(url.addr).await?;
        conn.send(request(&method, &url.authority, &url.target, content_type, body)?).await
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| format!("{}{}: timed out", url.authority, url.target))?
}

/// What counts as a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Expect {
    /// bilibili/discovery: HTTP 200 and an envelope with `"code":0`.
    Discovery,
    /// Any HTTP 200 (etcd's JSON gateway).
    Http200,
}

/// `Ok` for a success, else the error class to count (`http 503`, `code -500`, ...).
pub fn classify(expect: Expect, status: StatusCode, body: &[u8]) -> Result<(), String> {
    if status != StatusCode::OK {
        return Err(format!("http {}", status.as_u16()));
    }
    match expect {
        Expect::Http200 => Ok(()),
        Expect::Discovery => match envelope_code(body) {
            Some(0) => Ok(()),
            Some(code) => Err(format!("code {code}")),
            None => Err("no envelope code".to_string()),
        },
    }
}

/// The `code` of a bilibili envelope: the first `"code":<int>` of the body (envelopes start with it).
pub fn envelope_code(body: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"code\":";
    let at = body.windows(KEY.len()).position(|w| w == KEY)?;
    let rest = &body[at + KEY.len()..];
    let end = rest.iter().position(|b| !(b.is_ascii_digit() || *b == b'-' || *b == b' ')).unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_loopback_http() {
        let url = Url::parse("http://127.0.0.1:7171/discovery/fetch?appid=a").expect("test");
        assert_eq!(url.authority, "127.0.0.1:7171");
        assert_eq!(url.target, "/discovery/fetch?appid=a");
        assert_eq!(Url::parse("http://127.0.0.1:1").expect("test").target, "/");
        assert!(Url::parse("https://127.0.0.1:1/").is_err());
        assert!(Url::parse("http://10.1.2.3:80/").is_err());
    }

    #[test]
    fn success_needs_code_zero_for_discovery_and_200_for_etcd() {
        let ok = StatusCode::OK;
        assert_eq!(classify(Expect::Discovery, ok, br#"{"code":0,"message":"0"}"#), Ok(()));
        assert_eq!(classify(Expect::Discovery, ok, br#"{"code":-503,"message":"x"}"#), Err("code -503".into()));
        assert!(classify(Expect::Discovery, ok, b"oops").is_err());
        assert_eq!(classify(Expect::Http200, ok, b"{}"), Ok(()));
        assert_eq!(classify(Expect::Http200, StatusCode::BAD_GATEWAY, b"{}"), Err("http 502".into()));
    }
}
