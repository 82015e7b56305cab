//! State that is not history and must survive a restore: login sessions, the
//! backup audit trail and the Kafka relay cursor. A small sled database of its own
//! beside the generations, so swapping the log never touches it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StoreError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) username: String,
    pub(crate) expires_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AuditEntry {
    pub(crate) id: u64,
    pub(crate) timestamp: String,
    pub(crate) action: String,
    pub(crate) backup: Option<String>,
    pub(crate) user: String,
    pub(crate) details: serde_json::Value,
}

/// Live sessions by token digest: every authenticated request asks, so the
/// answer comes from memory, never from a disk read on an async thread. The
/// tree is the durable copy; this process is its only writer (the LOCK).
type SessionCache = Arc<RwLock<HashMap<[u8; 32], Session>>>;

#[derive(Clone)]
pub(crate) struct Meta {
    db: sled::Db,
    sessions: sled::Tree,
    /// Every session created or revoked, in order: what the log-topic relay
    /// publishes so replicas honour the primary's tokens (SPEC §12).
    session_log: sled::Tree,
    live_sessions: SessionCache,
    audit: sled::Tree,
    relay: sled::Tree,
    /// Kind of a backup when its manifest does not tell (uploads keep their bytes).
    kinds: sled::Tree,
    /// Backups confirmed off-site (name -> size and SHA-256 read back), and rotated
    /// ones whose off-site copy is still to be removed (name -> empty).
    offsite: sled::Tree,
    offsite_drop: sled::Tree,
}

/// A restore that outside mirrors must hear about once generation `gen` is live
/// (written by the restore before its swap, read and cleared by the Kafka relay):
/// the two never call each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RestoreNotice {
    pub(crate) gen: u64,
    pub(crate) backup: String,
    pub(crate) last_event_id: u64,
}

/// Key of the notice in the relay tree (kept from earlier versions).
const RESTORE_NOTICE: &str = "pending_restore";

/// What was read back from the bucket for a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Confirmed {
    pub(crate) size: u64,
    pub(crate) sha256: String,
    pub(crate) at_ms: i64,
}

fn token_key(token: &str) -> [u8; 32] {
    // Only a digest is stored: a copied data dir or backup does not leak live tokens.
    Sha256::digest(token.as_bytes()).into()
}

impl Meta {
    pub(crate) fn open(dir: &Path) -> Result<Meta, StoreError> {
        let db = super::gen::open_db(dir, 8 * 1024 * 1024)?;
        let sessions = db.open_tree("sessions")?;
        let mut live = HashMap::new();
        for r in sessions.iter() {
            let (k, v) = r?;
            // An unreadable entry is no session; the purge removes it.
            if let (Ok(key), Ok(s)) = (<[u8; 32]>::try_from(k.as_ref()), bincode::deserialize(&v)) {
                live.insert(key, s);
            }
        }
        let session_log = db.open_tree("session_log")?;
        let meta = Meta {
            sessions,
            session_log,
            live_sessions: Arc::new(RwLock::new(live)),
            audit: db.open_tree("audit")?,
            relay: db.open_tree("relay")?,
            kinds: db.open_tree("backup_kinds")?,
            offsite: db.open_tree("offsite_confirmed")?,
            offsite_drop: db.open_tree("offsite_drop")?,
            db,
        };
        meta.seed_session_log()?;
        Ok(meta)
    }

    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// A new bearer token, durable before it is handed out.
    pub(crate) fn create_session(
        &self,
        username: &str,
        expires_ms: i64,
    ) -> Result<String, StoreError> {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let s = Session {
            username: username.to_string(),
            expires_ms,
        };
        let v = bincode::serialize(&s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let key = token_key(&token);
        self.sessions.insert(key, v)?;
        self.journal(&SessionChange::Created {
            token_hash: hex::encode(key),
            username: s.username.clone(),
            expires_ms,
        })?;
        self.flush()?;
        self.cache().insert(key, s);
        Ok(token)
    }

    /// The live session of a token, from memory (no disk access). Expired ones
    /// are not answered; the periodic purge removes them.
    pub(crate) fn session(&self, token: &str, now_ms: i64) -> Option<Session> {
        let live = self
            .live_sessions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        live.get(&token_key(token))
            .filter(|s| s.expires_ms > now_ms)
            .cloned()
    }

    fn cache(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock cannot leave the map half-changed
        // (single inserts and removes), so a poisoned lock is still usable.
        self.live_sessions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Dead in memory first: a logged-out token stops working at once, even if
    /// the durable removal then fails.
    pub(crate) fn revoke(&self, token: &str) -> Result<bool, StoreError> {
        let key = token_key(token);
        let gone = self.cache().remove(&key);
        let existed = self.sessions.remove(key)?.is_some();
        if let Some(s) = gone {
            self.journal(&SessionChange::Revoked {
                token_hash: hex::encode(key),
                expires_ms: s.expires_ms,
            })?;
        }
        self.flush()?;
        Ok(existed)
    }

    /// Drops every expired session (run now and then, so the tree does not grow forever).
    pub(crate) fn purge_sessions(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut n = 0;
        for r in self.sessions.iter() {
            let (k, v) = r?;
            let expired = bincode::deserialize::<Session>(&v)
                .map(|s| s.expires_ms <= now_ms)
                .unwrap_or(true);
            if expired {
                if let Ok(key) = <[u8; 32]>::try_from(k.as_ref()) {
                    self.cache().remove(&key);
                }
                self.sessions.remove(k)?;
                n += 1;
            }
        }
        // Changes about sessions that have expired by now tell a replica nothing
        // its own clock does not: the journal does not grow forever.
        for r in self.session_log.iter() {
            let (k, v) = r?;
            let stale = serde_json::from_slice::<SessionChange>(&v)
                .map(|c| c.expires_ms() <= now_ms)
                .unwrap_or(true);
            if stale {
                self.session_log.remove(k)?;
            }
        }
        Ok(n)
    }

    pub(crate) fn audit(
        &self,
        action: &str,
        backup: Option<&str>,
        user: &str,
        details: serde_json::Value,
    ) -> Result<AuditEntry, StoreError> {
        let id = self.db.generate_id()? + 1;
        let e = AuditEntry {
            id,
            timestamp: crate::domain::time::fmt_ms(crate::domain::time::now_ms()),
            action: action.to_string(),
            backup: backup.map(str::to_string),
            user: user.to_string(),
            details,
        };
        let v = serde_json::to_vec(&e).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.audit.insert(id.to_be_bytes(), v)?;
        self.flush()?;
        Ok(e)
    }

    /// Newest first.
    pub(crate) fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let mut out = Vec::new();
        for r in self.audit.iter().rev().take(limit) {
            let (_, v) = r?;
            out.push(serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        Ok(out)
    }

    pub(crate) fn backup_kind(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .kinds
            .get(name)?
            .map(|v| String::from_utf8_lossy(&v).to_string()))
    }

    pub(crate) fn set_backup_kind(&self, name: &str, kind: Option<&str>) -> Result<(), StoreError> {
        match kind {
            Some(k) => self.kinds.insert(name, k.as_bytes()).map(|_| ())?,
            None => self.kinds.remove(name).map(|_| ())?,
        }
        self.db.flush()?;
        Ok(())
    }

    pub(crate) fn relay_get(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .relay
            .get(key)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    pub(crate) fn relay_get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.relay.get(key)?.map(|v| v.to_vec()))
    }

    pub(crate) fn relay_put_raw(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.relay.insert(key, value)?;
        self.db.flush()?;
        Ok(())
    }

    pub(crate) fn relay_remove(&self, key: &str) -> Result<(), StoreError> {
        self.relay.remove(key)?;
        self.db.flush()?;
        Ok(())
    }

    /// Several relay values in one atomic batch and one flush.
    pub(crate) fn relay_set_all(&self, values: &[(&str, u64)]) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for (k, v) in values {
            b.insert(k.as_bytes(), &v.to_be_bytes());
        }
        self.relay.apply_batch(b)?;
        self.db.flush()?;
        Ok(())
    }

    pub(crate) fn offsite_confirmed(&self, name: &str) -> Result<Option<Confirmed>, StoreError> {
        match self.offsite.get(name.as_bytes())? {
            Some(v) => Ok(bincode::deserialize(&v).ok()),
            None => Ok(None),
        }
    }

    /// Records a confirmed copy (durably: it is what keeps it from being copied again).
    pub(crate) fn set_offsite_confirmed(
        &self,
        name: &str,
        c: &Confirmed,
    ) -> Result<(), StoreError> {
        let v = bincode::serialize(c).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.offsite.insert(name.as_bytes(), v)?;
        self.flush()
    }

    /// A rotated backup whose off-site copy must go too (kept until it is gone).
    pub(crate) fn queue_offsite_removal(&self, name: &str) -> Result<(), StoreError> {
        self.offsite_drop.insert(name.as_bytes(), &[])?;
        self.flush()
    }

    pub(crate) fn offsite_removals(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for r in self.offsite_drop.iter() {
            let (k, _) = r?;
            out.push(String::from_utf8_lossy(&k).to_string());
        }
        Ok(out)
    }

    /// The off-site copy of `name` is gone: forget both records.
    pub(crate) fn offsite_removed(&self, name: &str) -> Result<(), StoreError> {
        self.offsite_drop.remove(name.as_bytes())?;
        self.offsite.remove(name.as_bytes())?;
        self.flush()
    }

    /// Records a restore notice durably (before the swap, so a crash between the
    /// two cannot lose it).
    pub(crate) fn record_restore_notice(&self, n: &RestoreNotice) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(n).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.relay_put_raw(RESTORE_NOTICE, &bytes)
    }

    pub(crate) fn restore_notice(&self) -> Option<RestoreNotice> {
        self.relay_get_raw(RESTORE_NOTICE)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    pub(crate) fn clear_restore_notice(&self) -> Result<(), StoreError> {
        self.relay_remove(RESTORE_NOTICE)
    }
}

/// One change to the sessions, as it travels on the log topic (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub(crate) enum SessionChange {
    #[serde(rename_all = "camelCase")]
    Created {
        token_hash: String,
        username: String,
        expires_ms: i64,
    },
    #[serde(rename_all = "camelCase")]
    Revoked { token_hash: String, expires_ms: i64 },
}

impl SessionChange {
    fn expires_ms(&self) -> i64 {
        match self {
            SessionChange::Created { expires_ms, .. }
            | SessionChange::Revoked { expires_ms, .. } => *expires_ms,
        }
    }
}

impl Meta {
    fn journal(&self, change: &SessionChange) -> Result<(), StoreError> {
        let id = self.db.generate_id()? + 1;
        let v = serde_json::to_vec(change).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.session_log.insert(id.to_be_bytes(), v)?;
        Ok(())
    }

    /// A data dir from before the journal: its live sessions become its start.
    fn seed_session_log(&self) -> Result<(), StoreError> {
        if !self.session_log.is_empty() {
            return Ok(());
        }
        let live: Vec<([u8; 32], Session)> = self
            .live_sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, s)| (*k, s.clone()))
            .collect();
        for (key, s) in live {
            self.journal(&SessionChange::Created {
                token_hash: hex::encode(key),
                username: s.username,
                expires_ms: s.expires_ms,
            })?;
        }
        Ok(())
    }

    /// The journal position of the newest session change (0: none).
    pub(crate) fn session_journal_end(&self) -> Result<u64, StoreError> {
        Ok(match self.session_log.last()? {
            Some((k, _)) => <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .unwrap_or(0),
            None => 0,
        })
    }

    /// Session changes after journal position `after`, oldest first.
    pub(crate) fn session_changes(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, SessionChange)>, StoreError> {
        let mut out = Vec::new();
        for r in self
            .session_log
            .range((after + 1).to_be_bytes()..)
            .take(limit)
        {
            let (k, v) = r?;
            let id = <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("bad session journal key".into()))?;
            if let Ok(c) = serde_json::from_slice(&v) {
                out.push((id, c));
            }
        }
        Ok(out)
    }

    /// A replica takes a change the primary published (and journals it, so a
    /// promoted replica carries it on). Not flushed: the caller flushes once
    /// per batch, before it records how far it got.
    pub(crate) fn apply_session_change(&self, change: &SessionChange) -> Result<(), StoreError> {
        let key: [u8; 32] = match change {
            SessionChange::Created { token_hash, .. }
            | SessionChange::Revoked { token_hash, .. } => hex::decode(token_hash)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| StoreError::Corrupt("bad session token hash".into()))?,
        };
        match change {
            SessionChange::Created {
                username,
                expires_ms,
                ..
            } => {
                let s = Session {
                    username: username.clone(),
                    expires_ms: *expires_ms,
                };
                let v = bincode::serialize(&s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                self.sessions.insert(key, v)?;
                self.cache().insert(key, s);
            }
            SessionChange::Revoked { .. } => {
                self.cache().remove(&key);
                self.sessions.remove(key)?;
            }
        }
        self.journal(change)
    }
}

/// How often expired sessions are removed while serving (and once at start).
const SESSION_PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

impl Meta {
    /// Removes expired sessions, saying how many in the log.
    pub(crate) fn purge_expired(&self) {
        match self.purge_sessions(crate::domain::time::now_ms()) {
            Ok(n) if n > 0 => tracing::info!(expired = n, "removed expired sessions"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not purge expired sessions"),
        }
    }

    /// Purges expired sessions every [`SESSION_PURGE_EVERY`] until `stop` flips.
    pub(crate) fn spawn_purge(
        self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(SESSION_PURGE_EVERY) => {}
                    _ = stop.changed() => return,
                }
                let meta = self.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || meta.purge_expired()).await {
                    tracing::warn!(error = %e, "session purge task failed");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_answered_from_memory_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (live, short, gone) = {
            let m = Meta::open(dir.path()).unwrap();
            let live = m.create_session("ann", 10_000).unwrap();
            let short = m.create_session("bob", 1_000).unwrap();
            let gone = m.create_session("cy", 10_000).unwrap();
            assert_eq!(m.session(&live, 5_000).unwrap().username, "ann");
            assert!(m.session(&short, 1_000).is_none(), "expired at its end");
            assert!(m.revoke(&gone).unwrap());
            assert!(m.session(&gone, 0).is_none(), "revoked at once");
            assert!(m.session("not-a-token", 0).is_none());
            (live, short, gone)
        };
        // A new process: the cache is rebuilt from the durable tree.
        let m = Meta::open(dir.path()).unwrap();
        assert_eq!(m.session(&live, 5_000).unwrap().username, "ann");
        assert_eq!(m.session(&short, 500).unwrap().username, "bob");
        assert!(m.session(&gone, 0).is_none(), "a revoke is durable");
        assert_eq!(m.purge_sessions(5_000).unwrap(), 1);
        assert!(m.session(&short, 500).is_none(), "purged from memory too");
        assert!(m.session(&live, 5_000).is_some());
    }
}
