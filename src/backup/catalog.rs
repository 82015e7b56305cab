//! The backup directory as a catalog: which backup files exist, newest first.

use std::path::Path;

use chrono::NaiveDateTime;
use serde_json::json;

use crate::domain::time::fmt_ms;

#[derive(Debug, Clone)]
pub(crate) struct FileInfo {
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) created_ms: i64,
}

/// `backup_YYYY-MM-DD_HHMMSS[_label].tar.gz` → the UTC time in its name.
pub(crate) fn created_from_name(name: &str) -> Option<i64> {
    let stamp = name.strip_prefix("backup_")?.get(..17)?;
    NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d_%H%M%S")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

pub(crate) fn is_backup_name(name: &str) -> bool {
    name.starts_with("backup_") && name.ends_with(".tar.gz") && !name.starts_with('.')
}

/// Backup files in `dir`, newest first (by the time in their name, then by name).
pub(crate) fn list_files(dir: &Path) -> Vec<FileInfo> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !is_backup_name(&name) {
            continue;
        }
        let Ok(md) = e.metadata() else { continue };
        if !md.is_file() {
            continue;
        }
        let created_ms = created_from_name(&name).unwrap_or_else(|| {
            md.modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        });
        out.push(FileInfo {
            name,
            size: md.len(),
            created_ms,
        });
    }
    out.sort_by(|a, b| {
        b.created_ms
            .cmp(&a.created_ms)
            .then_with(|| b.name.cmp(&a.name))
    });
    out
}

pub(crate) fn mb(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 100.0).round() / 100.0
}

/// The `backup` block of `/api/health`.
pub(crate) fn health_block(dir: &Path) -> serde_json::Value {
    let files = list_files(dir);
    let total: u64 = files.iter().map(|f| f.size).sum();
    let latest = files
        .first()
        .map(|f| json!({"name": f.name, "created": fmt_ms(f.created_ms), "size": f.size}));
    json!({
        "available": !files.is_empty(),
        "count": files.len(),
        "latest": latest,
        "totalSizeMB": mb(total),
    })
}
