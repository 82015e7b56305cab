//! `taskledger backup …` and `taskledger restore FILE` against a stopped server.

use std::path::Path;

use crate::config::{BackupCmd, Config};
use crate::RunError;

pub fn backup(_config: &Config, _cmd: BackupCmd) -> Result<u8, RunError> {
    Err(RunError::Other(
        "backups are not available in this build yet".into(),
    ))
}

pub fn restore(_config: &Config, _file: &Path) -> Result<u8, RunError> {
    Err(RunError::Other(
        "restore is not available in this build yet".into(),
    ))
}
