//! How much one client may ask of the server (`[server.limits]`): open connections, in all
//! and per client address ([`LimitAcceptor`], closing the connections beyond them as they
//! are accepted); the time a request may take ([`request_timeout`], 408); the nesting of a
//! JSON body ([`JsonDepth`], checked by the API's body extractor); and the HTTP settings
//! that bound a request's head and the time a client has to send it ([`tune`]). Request
//! bodies are bounded by `server.max_body_bytes` (axum's `DefaultBodyLimit`).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::accept::Accept;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::RequestLimits;

/// The deepest nesting of arrays and objects a JSON body may have, as a request extension
/// (the router adds it; absent, [`JsonDepth::DEFAULT`]).
#[derive(Debug, Clone, Copy)]
pub struct JsonDepth(pub usize);

impl JsonDepth {
    pub const DEFAULT: JsonDepth = JsonDepth(32);
}

/// Whether `json` nests arrays and objects at most `max` deep. A scan of the bytes, before
/// anything is decoded, so a deeply nested body costs no more than its length; strings are
/// skipped (a bracket inside one does not count).
pub fn json_depth_within(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// The HTTP settings of every connection: the time to send a request's head (idle
/// kept-alive connections included), how many header fields and bytes it may have; for
/// HTTP/2, the header list size, concurrent streams and pings that drop dead peers.
pub fn tune(
    builder: &mut hyper_util::server::conn::auto::Builder<TokioExecutor>,
    l: &RequestLimits,
) {
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(l.header_read_timeout)
        .max_headers(l.max_headers)
        .max_buf_size(l.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(l.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(l.header_read_timeout))
        .keep_alive_timeout(l.header_read_timeout);
}

/// Answers 408 when a request (reading its body included) takes longer than the limit.
pub async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            metrics::counter!("kaas_http_requests_timed_out_total").increment(1);
            (
                StatusCode::REQUEST_TIMEOUT,
                axum::Json(serde_json::json!({"error": {
                    "code": "timeout",
                    "message": format!("the request took longer than {}s", limit.as_secs()),
                    "field": null,
                }})),
            )
                .into_response()
        }
    }
}

/// Open connections, in all and per client address.
#[derive(Debug)]
pub struct ConnectionSlots {
    max_total: usize,
    max_per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One open connection's place; given back when the connection closes.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<ConnectionSlots>,
    address: IpAddr,
}

impl ConnectionSlots {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<ConnectionSlots> {
        Arc::new(ConnectionSlots {
            max_total,
            max_per_address,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A place for a connection from `address`, or `None` when either limit is reached.
    pub fn take(self: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_address) = &mut *open;
        let mine = per_address.entry(address).or_insert(0);
        if *total >= self.max_total || *mine >= self.max_per_address {
            if *mine == 0 {
                per_address.remove(&address);
            }
            return None;
        }
        *mine += 1;
        *total += 1;
        Some(Slot {
            slots: self.clone(),
            address,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_address) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_address.remove(&self.address);
            }
        }
    }
}

/// Takes a [`Slot`] for each accepted connection and closes the connection at once when
/// there is none; the slot lives as long as the connection. Wraps the acceptor that makes
/// the connection's byte stream (plain, or TLS after its handshake), so that a connection
/// that sends no request at all is closed after `first_request` too: hyper's header timeout
/// only starts with the first request, and the HTTP/1-or-2 detection waits unbounded.
#[derive(Debug, Clone)]
pub struct LimitAcceptor<A> {
    slots: Arc<ConnectionSlots>,
    inner: A,
    first_request: Duration,
}

impl<A> LimitAcceptor<A> {
    pub fn new(slots: Arc<ConnectionSlots>, inner: A, first_request: Duration) -> Self {
        LimitAcceptor {
            slots,
            inner,
            first_request,
        }
    }
}

type Accepted<St, Sv> = Pin<Box<dyn Future<Output = io::Result<(Limited<St>, Sv)>> + Send>>;

impl<A, S> Accept<TcpStream, S> for LimitAcceptor<A>
where
    A: Accept<TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Limited<A::Stream>;
    type Service = A::Service;
    type Future = Accepted<A::Stream, A::Service>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let slot = stream
            .peer_addr()
            .ok()
            .and_then(|peer| self.slots.take(peer.ip()));
        let Some(slot) = slot else {
            metrics::counter!("kaas_http_connections_refused_total").increment(1);
            tracing::debug!("connection limit reached; closing a new connection");
            // Dropping the stream closes the connection.
            return Box::pin(std::future::ready(Err(io::Error::other(
                "connection limit reached",
            ))));
        };
        let accepted = self.inner.accept(stream, service);
        let first_request = self.first_request;
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            let limited = Limited {
                stream,
                _slot: slot,
                first_byte: Some(Box::pin(tokio::time::sleep(first_request))),
            };
            Ok((limited, service))
        })
    }
}

/// An accepted connection holding its [`Slot`], closed if its first byte does not come in
/// time.
pub struct Limited<S> {
    stream: S,
    _slot: Slot,
    first_byte: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Limited<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.first_byte = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let late = this
                    .first_byte
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if late {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request in time",
                    )))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Limited<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        assert!(json_depth_within(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(!json_depth_within(br#"{"a":[1,{"b":2}]}"#, 2));
        assert!(json_depth_within(br#"{"a":"[[[[[[\"[[[["}"#, 1));
        let deep = "[".repeat(10_000);
        assert!(!json_depth_within(deep.as_bytes(), 32));
    }

    #[test]
    fn connection_slots_bound_the_total_and_each_address() {
        let slots = ConnectionSlots::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = slots.take(a).unwrap();
        let _a2 = slots.take(a).unwrap();
        assert!(slots.take(a).is_none(), "two per address");
        let _b1 = slots.take(b).unwrap();
        assert!(slots.take(b).is_none(), "three in all");
        drop(a1);
        assert_eq!(slots.open(), 2);
        assert!(
            slots.take(b).is_some(),
            "a closed connection frees its place"
        );
    }
}
