//! Backups: the archive format, the catalog of the backup dir, the manager
//! (schedule, rotation), restore (verify, scratch, swap) and the drop folder.

pub mod catalog;
pub mod cli;
