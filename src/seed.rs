//! Seeding users: the first `admin` (on a store with no users: first start, or
//! after restoring a log without any) and the `--demo` members. Touches only the
//! store's command path and the config's passwords.

use rand::distributions::{Alphanumeric, DistString};

use crate::config::Config;
use crate::domain::password::hash_password;
use crate::domain::{Command, Id, Role};
use crate::store::{Store, WriteError};

/// The configuration seeding reads.
#[derive(Clone)]
pub(crate) struct Seeding {
    pub(crate) admin_password: Option<String>,
    pub(crate) demo: bool,
}

// The password never reaches a log line.
impl std::fmt::Debug for Seeding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seeding")
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<set>"),
            )
            .field("demo", &self.demo)
            .finish()
    }
}

impl Seeding {
    pub(crate) fn from_config(c: &Config) -> Seeding {
        Seeding {
            admin_password: c.auth.admin_password.clone(),
            demo: c.demo,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SeedError {
    #[error("hashing a password: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("seeding task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

pub(crate) const DEMO_USERS: [&str; 5] = ["Avinash", "Dhaya", "Ashok", "Arun", "Cathrine"];

async fn ensure_user(
    store: &Store,
    username: &str,
    password: String,
    role: Role,
) -> Result<bool, SeedError> {
    if store.gen().user(username).is_some() {
        return Ok(false);
    }
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await?
        .map_err(SeedError::Hash)?;
    let out = store
        .execute(
            "system",
            Command::CreateUser {
                id: Id::generate(),
                username: username.to_string(),
                password_hash: hash,
                role,
                if_absent: true,
            },
        )
        .await?;
    Ok(out.touched != crate::domain::state::Touched::Nothing)
}

/// First start: an `admin`; with `--demo`, the demo members.
pub(crate) async fn seed_users(store: &Store, config: &Seeding) -> Result<(), SeedError> {
    if !store.gen().has_users() {
        let (password, generated) = match &config.admin_password {
            Some(p) => (p.clone(), false),
            None => (
                Alphanumeric.sample_string(&mut rand::thread_rng(), 20),
                true,
            ),
        };
        ensure_user(store, "admin", password.clone(), Role::Admin).await?;
        if generated {
            tracing::warn!(
                "created user 'admin' with generated password: {password} (shown once; set TASKLEDGER_ADMIN_PASSWORD to choose it)"
            );
        } else {
            tracing::info!("created user 'admin' with the password from TASKLEDGER_ADMIN_PASSWORD");
        }
    }
    if config.demo {
        for name in DEMO_USERS {
            if ensure_user(store, name, format!("{name}123"), Role::Member).await? {
                tracing::info!(user = name, "created demo user");
            }
        }
    }
    Ok(())
}
