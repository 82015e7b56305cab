//! The one way blocking work (sled, files, argon2, archives, replays) leaves the
//! async threads, for every component: a panic or cancellation of the blocking
//! task becomes the caller's own error type. Owns nothing, touches nothing.

/// Runs `f` on tokio's blocking pool and answers its result.
pub(crate) async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<tokio::task::JoinError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}
