//! The HTTP server loop around the router: owns the listening socket and every
//! connection. Bounds what a client can hold — a header must arrive within a few
//! seconds (which also closes idle keep-alive connections), connections are
//! capped below the file-descriptor limit — and gives graceful shutdown a
//! deadline, so one half-sent request cannot keep the process alive.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Time to send a request's header; also how long an idle connection is kept.
const HEADER_READ: Duration = Duration::from_secs(10);
/// After a shutdown request, how long requests in flight may still finish.
const DRAIN: Duration = Duration::from_secs(10);
/// File descriptors kept free for the store, backups and the drop folder.
const FD_RESERVE: u64 = 256;

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
    soft.saturating_sub(FD_RESERVE).clamp(64, 100_000) as usize
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !full_logged {
                tracing::warn!(
                    budget,
                    "connection limit reached; closing new connections until some end"
                );
                full_logged = true;
            }
            drop(stream);
            continue;
        };
        full_logged = false;
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
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
