//! Backups: the archive format, the catalog of the backup dir, the manager
//! (schedule, rotation), restore (verify, scratch, swap) and the drop folder.

pub mod archive;
pub mod catalog;
pub mod cli;
