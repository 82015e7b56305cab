//! A write set over a base (the live sled tree, or nothing): reads see the
//! pending writes first, so commands later in a group-commit batch see the
//! effects of earlier ones. It turns into one atomic sled `Batch`.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::keys;
use crate::domain::{GroupRec, TaskRec, UserRec, View};

/// What an overlay reads through to.
pub trait Base {
    fn get(&self, key: &[u8]) -> sled::Result<Option<Vec<u8>>>;
    fn scan(&self, prefix: &[u8]) -> sled::Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

impl Base for sled::Tree {
    fn get(&self, key: &[u8]) -> sled::Result<Option<Vec<u8>>> {
        Ok(sled::Tree::get(self, key)?.map(|v| v.to_vec()))
    }
    fn scan(&self, prefix: &[u8]) -> sled::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.scan_prefix(prefix)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect()
    }
}

pub struct Overlay<'a, B: Base> {
    base: &'a B,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The first read error: `View` cannot return one, so the writer checks here
    /// after each command and fails the batch instead of acting on a bad read.
    error: RefCell<Option<sled::Error>>,
}

impl<'a, B: Base> Overlay<'a, B> {
    pub fn new(base: &'a B) -> Self {
        Overlay {
            base,
            writes: BTreeMap::new(),
            error: RefCell::new(None),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn remove(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    pub fn take_error(&self) -> Option<sled::Error> {
        self.error.borrow_mut().take()
    }

    fn note(&self, e: sled::Error) {
        let mut slot = self.error.borrow_mut();
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(v) = self.writes.get(key) {
            return v.clone();
        }
        match self.base.get(key) {
            Ok(v) => v,
            Err(e) => {
                self.note(e);
                None
            }
        }
    }

    pub fn get_as<T: DeserializeOwned>(&self, key: &[u8]) -> Option<T> {
        let bytes = self.get(key)?;
        match bincode::deserialize(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                self.note(sled::Error::Unsupported(format!("corrupt record: {e}")));
                None
            }
        }
    }

    /// Base entries under `prefix` merged with the pending writes, in key order.
    pub fn scan(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = match self.base.scan(prefix) {
            Ok(v) => v.into_iter().collect(),
            Err(e) => {
                self.note(e);
                BTreeMap::new()
            }
        };
        for (k, v) in self
            .writes
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
        {
            match v {
                Some(v) => {
                    merged.insert(k.clone(), v.clone());
                }
                None => {
                    merged.remove(k);
                }
            }
        }
        merged.into_iter().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn into_writes(self) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        self.writes
    }

    pub fn into_batch(self) -> sled::Batch {
        let mut b = sled::Batch::default();
        for (k, v) in self.writes {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        b
    }
}

impl<B: Base> View for Overlay<'_, B> {
    fn user(&self, username: &str) -> Option<UserRec> {
        self.get_as(&keys::user(username))
    }
    fn group(&self, id: Uuid) -> Option<GroupRec> {
        self.get_as(&keys::id(keys::GROUP, id))
    }
    fn task(&self, id: Uuid) -> Option<TaskRec> {
        self.get_as(&keys::id(keys::TASK, id))
    }
    fn task_ids_of_group(&self, id: Uuid) -> Vec<Uuid> {
        self.scan(&keys::id(keys::GROUP_TASK, id))
            .into_iter()
            .filter_map(|(_, v)| Uuid::from_slice(&v).ok())
            .collect()
    }
}

/// A base with nothing in it: replaying into an empty overlay gives a fresh projection.
pub struct Empty;

impl Base for Empty {
    fn get(&self, _key: &[u8]) -> sled::Result<Option<Vec<u8>>> {
        Ok(None)
    }
    fn scan(&self, _prefix: &[u8]) -> sled::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(Vec::new())
    }
}
