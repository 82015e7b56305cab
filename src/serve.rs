//! The HTTP server loop around the router: owns the listening socket and every
//! connection. Bounds what a client can hold — a header must arrive within a few
//! seconds (which also closes idle keep-alive connections), connections are
//! capped below the file-descriptor limit, and at the cap the connection idle
//! longest is closed to admit a new one (so idle sockets cannot lock out a
//! client with a request to make) — and gives graceful shutdown a deadline, so
//! one half-sent request cannot keep the process alive.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

/// Time to send a request's header; also how long an idle connection is kept.
const HEADER_READ: Duration = Duration::from_secs(10);
/// After a shutdown request, how long requests in flight may still finish.
const DRAIN: Duration = Duration::from_secs(10);
/// File descriptors kept free for the store, backups and the drop folder.
const FD_RESERVE: u64 = 256;
/// At the cap, how long a new connection waits for the one closed to make room.
const ADMIT_WAIT: Duration = Duration::from_secs(1);

/// One open connection, as the cap sees it: requests in progress (a response
/// counts until its body is sent) and since when it has had none.
struct Conn {
    busy: AtomicUsize,
    /// Milliseconds since `epoch` (the server's start, copied here so a request
    /// touches only its own connection's memory, never a shared counter).
    idle_since_ms: AtomicU64,
    epoch: Instant,
    close: Notify,
    /// Set by [`Abort`]: close even with a response in progress.
    aborted: std::sync::atomic::AtomicBool,
    /// A second descriptor of the socket, for [`Abort::limit_send_buffer`]
    /// (hyper owns the first).
    fd: Option<std::os::fd::OwnedFd>,
}

/// Every open connection, so the one idle longest can be found at the cap.
struct Conns {
    epoch: Instant,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Conns {
    fn new() -> Conns {
        Conns {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn add(&self, fd: Option<std::os::fd::OwnedFd>) -> (u64, Arc<Conn>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            epoch: self.epoch,
            close: Notify::new(),
            aborted: std::sync::atomic::AtomicBool::new(false),
            fd,
        });
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, conn.clone());
        }
        (id, conn)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Asks the connection idle longest (none of its requests in progress) to
    /// close; false when every connection is busy.
    fn evict_idlest(&self) -> bool {
        let Ok(mut open) = self.open.lock() else {
            return false;
        };
        let victim = open
            .iter()
            .filter(|(_, c)| c.busy.load(Ordering::SeqCst) == 0)
            .min_by_key(|(_, c)| c.idle_since_ms.load(Ordering::SeqCst))
            .map(|(id, _)| *id);
        match victim.and_then(|id| open.remove(&id)) {
            Some(conn) => {
                conn.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A request in progress on a connection, until its response body is sent.
struct Busy {
    conn: Arc<Conn>,
}

impl Busy {
    fn enter(conn: Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::SeqCst);
        Busy { conn }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.conn.epoch.elapsed().as_millis() as u64;
        self.conn.idle_since_ms.store(now, Ordering::SeqCst);
        self.conn.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A handler's way to close its own connection at once, response unfinished
/// (a live-update client that does not read: its socket holds the unsent part,
/// and waiting for it would keep the connection forever).
#[derive(Clone)]
pub(crate) struct Abort(Arc<Conn>);

impl Abort {
    pub(crate) fn abort(&self) {
        self.0.aborted.store(true, Ordering::SeqCst);
        self.0.close.notify_one();
    }

    /// Caps the kernel's send buffer of this connection (it grows to megabytes
    /// by itself): a long-lived stream to a client that stops reading then
    /// backs up into the handler's bounded buffer soon, where it is seen.
    pub(crate) fn limit_send_buffer(&self, bytes: usize) {
        if let Some(fd) = &self.0.fd {
            let _ = socket2::SockRef::from(fd).set_send_buffer_size(bytes);
        }
    }
}

/// The router as one connection's hyper service: one router clone per request
/// (as hyper-util's adapter does) and the connection's own busy count.
#[derive(Clone)]
struct Service {
    router: Router,
    conn: Arc<Conn>,
}

impl hyper::service::Service<axum::extract::Request<hyper::body::Incoming>> for Service {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: axum::extract::Request<hyper::body::Incoming>) -> Self::Future {
        let busy = Busy::enter(self.conn.clone());
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(Abort(self.conn.clone()));
        let answer = self.router.clone().oneshot(req);
        Box::pin(async move {
            let resp = answer
                .await
                .unwrap_or_else(|never: Infallible| match never {});
            // A body whose size is known is written out at once: the request ends
            // here. A stream (a backup download) keeps the connection busy until sent.
            if http_body::Body::size_hint(resp.body()).exact().is_some() {
                return Ok(resp);
            }
            Ok(resp.map(|inner| Body::new(Tracked { inner, _busy: busy })))
        })
    }
}

/// A response body that keeps its connection busy until it is sent (a long
/// download is not idle).
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Raises the soft open-files limit to the hard one (a default of 1024 is far
/// too low for a server) and answers how many connections fit under it.
pub(crate) fn connection_budget() -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let soft = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open-files limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    };
    // Two descriptors per connection (see `Conn::fd`).
    (soft.saturating_sub(FD_RESERVE) / 2).clamp(64, 100_000) as usize
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains for at
/// most [`DRAIN`] and closes what is left.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let budget = connection_budget();
    let slots = Arc::new(Semaphore::new(budget));
    let conns = Arc::new(Conns::new());
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ)
        // Room above the router's own 414/431 limits, so those answer in JSON.
        .max_buf_size(512 * 1024)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    let mut full_logged = false;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if !full_logged {
                    tracing::warn!(
                        budget,
                        "connection limit reached; closing the connections idle longest to admit new ones"
                    );
                    full_logged = true;
                }
                let admitted = if conns.evict_idlest() {
                    tokio::time::timeout(ADMIT_WAIT, slots.clone().acquire_owned())
                        .await
                        .ok()
                        .and_then(Result::ok)
                } else {
                    None
                };
                match admitted {
                    Some(slot) => slot,
                    // Every connection is in the middle of a request: the new one waits its turn.
                    None => {
                        drop(stream);
                        continue;
                    }
                }
            }
        };
        if slots.available_permits() > budget / 10 {
            full_logged = false;
        }
        let _ = stream.set_nodelay(true);
        let fd = std::os::fd::AsFd::as_fd(&stream).try_clone_to_owned().ok();
        let (id, conn) = conns.add(fd);
        let service = Service {
            router: router.clone(),
            conn: conn.clone(),
        };
        let http = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let http = graceful.watch(http);
        let conns = conns.clone();
        tokio::spawn(async move {
            tokio::pin!(http);
            loop {
                tokio::select! {
                    _ = &mut http => break,
                    // Dropping the connection closes its socket; only between requests.
                    _ = conn.close.notified() => if conn.busy.load(Ordering::SeqCst) == 0 || conn.aborted.load(Ordering::SeqCst) { break },
                }
            }
            conns.remove(id);
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {
            tracing::warn!("connections still open {} s after shutdown began; closing them", DRAIN.as_secs());
        }
    }
}
