//! Configuration: the command line (clap) and the environment, checked once into
//! one typed [`Config`]. Flags win over env. Every invalid value becomes a one-line
//! [`ConfigError`] naming the setting; `main` exits with code 2 on it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

/// Every setting that is only an environment variable, for `--help`.
const ENV_HELP: &str = "\
Environment settings (invalid values stop the start with exit code 2):
  TASKLEDGER_ADMIN_PASSWORD   password of the first 'admin' (default: generated, printed once)
  TASKLEDGER_TOKEN_TTL_SECS   session lifetime in seconds (default 86400)
  AUTO_BACKUP_ENABLED         hourly automatic backups (default true)
  AUTO_BACKUP_INTERVAL        milliseconds between automatic backups (default 3600000)
  MAX_BACKUPS                 automatic backups kept (default 10)
  AUTO_RESTORE_ENABLED        watch the restore dir (default true)
  BACKUP_UPLOAD_LIMIT_MB      largest backup upload or import body (default 1024)
  KAFKA_ENABLED               mirror events to Kafka (default false)
  KAFKA_BROKER                comma-separated brokers (default localhost:9092)
  KAFKA_TOPIC                 topic (default todo-history-events)
  KAFKA_PARTITIONS            partitions when the topic is created (default 1)
  CORS_ORIGIN                 comma-separated browser origins allowed, or * (default: none)
  LOG_FORMAT                  text (default) or json
  S3_BUCKET_NAME              bucket for off-site copies of backups (default: off)
  AWS_ENDPOINT_URL            S3-compatible endpoint (MinIO, R2, Garage; default AWS)
  AWS_REGION                  region (default us-east-1)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   credentials
  S3_PREFIX                   key prefix in the bucket (default taskledger/)
  RESTORE_FROM_OFFSITE        latest: an empty store restores the newest off-site backup
  RUST_LOG                    log filter (default info)";

#[derive(Debug, Parser)]
#[command(
    name = "taskledger",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TASKLEDGER_COMMIT"), ")"),
    about = "Self-hosted, event-sourced task server",
    after_help = ENV_HELP
)]
pub struct Cli {
    /// Address to listen on.
    #[arg(
        long,
        env = "TASKLEDGER_ADDR",
        default_value = "127.0.0.1:3001",
        global = true
    )]
    pub(crate) addr: String,
    /// Where the event log and projections live.
    #[arg(
        long,
        env = "TASKLEDGER_DATA_DIR",
        default_value = "./storage",
        global = true
    )]
    pub(crate) data_dir: PathBuf,
    /// Where backups are written.
    #[arg(
        long,
        env = "TASKLEDGER_BACKUP_DIR",
        default_value = "./backups",
        global = true
    )]
    pub(crate) backup_dir: PathBuf,
    /// Drop folder: a backup placed here is restored automatically.
    #[arg(
        long,
        env = "TASKLEDGER_RESTORE_DIR",
        default_value = "./restore",
        global = true
    )]
    pub(crate) restore_dir: PathBuf,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the server (the default).
    Serve {
        /// Also create the demo members Avinash, Dhaya, Ashok, Arun, Cathrine.
        #[arg(long)]
        demo: bool,
    },
    /// Create, list or verify backups (create needs the server stopped).
    #[command(subcommand)]
    Backup(BackupCmd),
    /// Restore a backup into the data dir (server stopped), with the same checks as the API.
    Restore {
        file: PathBuf,
        /// Restore only the backup's log up to this instant: an RFC 3339 time or an event id.
        #[arg(long)]
        at: Option<String>,
    },
    /// Import a predecessor snapshot file (JSON) into the data dir (server stopped).
    Import { file: PathBuf },
    /// Drop and rebuild every projection from the log; prints counts.
    Rebuild,
    /// Verify the store: log continuity, projections equal a fresh replay.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum BackupCmd {
    /// Write a manual backup of the data dir.
    Create {
        #[arg(long)]
        label: Option<String>,
    },
    /// List backups, newest first.
    List,
    /// Fully verify a backup file.
    Verify { file: PathBuf },
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub enabled: bool,
    pub brokers: String,
    pub(crate) topic: String,
    pub(crate) partitions: i32,
}

/// Off-site copies (SPEC §9); present only when `S3_BUCKET_NAME` is set.
#[derive(Clone)]
pub struct OffsiteConfig {
    pub bucket: String,
    /// `AWS_ENDPOINT_URL`: MinIO, R2, Garage, …; AWS itself when unset.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub prefix: String,
    /// `RESTORE_FROM_OFFSITE=latest`.
    pub restore_latest: bool,
}

// Credentials never reach a log line, not even a debug one.
impl std::fmt::Debug for OffsiteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsiteConfig")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<set>"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<set>"),
            )
            .field("prefix", &self.prefix)
            .field("restore_latest", &self.restore_latest)
            .finish()
    }
}

#[derive(Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub(crate) backup_dir: PathBuf,
    pub(crate) restore_dir: PathBuf,
    pub(crate) admin_password: Option<String>,
    pub token_ttl_secs: u64,
    pub auto_backup_enabled: bool,
    pub auto_backup_interval_ms: u64,
    pub max_backups: usize,
    pub auto_restore_enabled: bool,
    /// Largest accepted backup upload.
    pub(crate) upload_limit_bytes: u64,
    pub kafka: KafkaConfig,
    pub offsite: Option<OffsiteConfig>,
    /// `CORS_ORIGIN`: origins allowed to call the API from a browser (`*`: any).
    pub cors: Cors,
    /// Requests taking longer are answered 503 (SPEC §11: 30 s; streaming backup
    /// routes exempt). Not a setting; tests shorten it.
    pub request_timeout: std::time::Duration,
    pub(crate) demo: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// Same origin only (the default).
    Off,
    Any,
    Origins(Vec<String>),
}

fn cors(env: &dyn Env) -> Result<Cors, ConfigError> {
    let Some(raw) = env.get("CORS_ORIGIN").filter(|v| !v.trim().is_empty()) else {
        return Ok(Cors::Off);
    };
    let list: Vec<String> = raw
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect();
    if list.iter().any(|o| o == "*") {
        return Ok(Cors::Any);
    }
    for o in &list {
        let host = o
            .strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"));
        let ok = host.is_some_and(|h| !h.is_empty() && !h.contains('/'))
            && axum::http::HeaderValue::from_str(o).is_ok();
        if !ok {
            return Err(err(
                "CORS_ORIGIN",
                format!("{o:?} is not an origin like https://tasks.example.com"),
            ));
        }
    }
    Ok(Cors::Origins(list))
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("backup_dir", &self.backup_dir)
            .field("restore_dir", &self.restore_dir)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<set>"),
            )
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("auto_backup_enabled", &self.auto_backup_enabled)
            .field("auto_backup_interval_ms", &self.auto_backup_interval_ms)
            .field("max_backups", &self.max_backups)
            .field("auto_restore_enabled", &self.auto_restore_enabled)
            .field("upload_limit_bytes", &self.upload_limit_bytes)
            .field("kafka", &self.kafka)
            .field("offsite", &self.offsite)
            .field("cors", &self.cors)
            .field("request_timeout", &self.request_timeout)
            .field("demo", &self.demo)
            .finish()
    }
}

fn offsite(env: &dyn Env) -> Result<Option<OffsiteConfig>, ConfigError> {
    let nonempty = |k: &str| {
        env.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let restore_latest = match nonempty("RESTORE_FROM_OFFSITE").as_deref() {
        None => false,
        Some("latest") => true,
        Some(v) => {
            return Err(err(
                "RESTORE_FROM_OFFSITE",
                format!("the only value is latest, got {v:?}"),
            ))
        }
    };
    let Some(bucket) = nonempty("S3_BUCKET_NAME") else {
        if restore_latest {
            return Err(err("RESTORE_FROM_OFFSITE", "needs S3_BUCKET_NAME"));
        }
        return Ok(None);
    };
    let endpoint = nonempty("AWS_ENDPOINT_URL");
    if let Some(e) = &endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(err(
                "AWS_ENDPOINT_URL",
                format!("{e:?} is not an http(s) URL"),
            ));
        }
    }
    let mut prefix = env.get("S3_PREFIX").unwrap_or_else(|| "taskledger/".into());
    if prefix.starts_with('/') || prefix.contains("..") {
        return Err(err(
            "S3_PREFIX",
            format!("{prefix:?} is not a usable key prefix"),
        ));
    }
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(Some(OffsiteConfig {
        bucket,
        endpoint,
        region: nonempty("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
        access_key_id: nonempty("AWS_ACCESS_KEY_ID"),
        secret_access_key: nonempty("AWS_SECRET_ACCESS_KEY"),
        prefix,
        restore_latest,
    }))
}

#[derive(Debug, thiserror::Error)]
#[error("invalid {setting}: {reason}")]
pub struct ConfigError {
    pub(crate) setting: String,
    pub(crate) reason: String,
}

fn err(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_string(),
        reason: reason.into(),
    }
}

/// The environment, as a function so tests can feed their own.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

fn parse_bool(env: &dyn Env, key: &str, default: bool) -> Result<bool, ConfigError> {
    match env.get(key) {
        None => Ok(default),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(err(key, format!("expected true or false, got {v:?}"))),
        },
    }
}

fn parse_positive(env: &dyn Env, key: &str, default: u64, what: &str) -> Result<u64, ConfigError> {
    match env.get(key) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<i128>() {
            Ok(n) if n > 0 && n <= u64::MAX as i128 => Ok(n as u64),
            Ok(_) => Err(err(key, format!("must be a positive {what}, got {v:?}"))),
            Err(_) => Err(err(key, format!("must be a positive {what}, got {v:?}"))),
        },
    }
}

/// Creates the directory if missing and proves it is writable.
pub(crate) fn ensure_dir(setting: &str, dir: &Path) -> Result<(), ConfigError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        err(
            setting,
            format!("cannot create directory {}: {e}", dir.display()),
        )
    })?;
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"probe").map_err(|e| {
        err(
            setting,
            format!("directory {} is not writable: {e}", dir.display()),
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

impl Config {
    pub fn from_cli(cli: &Cli, env: &dyn Env) -> Result<Config, ConfigError> {
        let addr = cli.addr.trim().parse::<SocketAddr>().map_err(|_| {
            err(
                "TASKLEDGER_ADDR (--addr)",
                format!("{:?} is not a host:port address", cli.addr),
            )
        })?;
        let admin_password = env
            .get("TASKLEDGER_ADMIN_PASSWORD")
            .filter(|p| !p.is_empty());
        if let Some(p) = &admin_password {
            crate::domain::decide::check_password(p)
                .map_err(|e| err("TASKLEDGER_ADMIN_PASSWORD", e.to_string()))?;
        }
        let max_backups = parse_positive(env, "MAX_BACKUPS", 10, "integer")?;
        let partitions = parse_positive(env, "KAFKA_PARTITIONS", 1, "integer")?;
        let brokers = env
            .get("KAFKA_BROKER")
            .unwrap_or_else(|| "localhost:9092".into());
        if brokers.trim().is_empty() {
            return Err(err("KAFKA_BROKER", "must not be empty"));
        }
        let topic = env
            .get("KAFKA_TOPIC")
            .unwrap_or_else(|| "todo-history-events".into());
        if topic.is_empty()
            || topic.len() > 249
            || !topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(err(
                "KAFKA_TOPIC",
                format!("{topic:?} is not a valid topic name"),
            ));
        }
        Ok(Config {
            addr,
            data_dir: cli.data_dir.clone(),
            backup_dir: cli.backup_dir.clone(),
            restore_dir: cli.restore_dir.clone(),
            admin_password,
            token_ttl_secs: parse_positive(
                env,
                "TASKLEDGER_TOKEN_TTL_SECS",
                86_400,
                "number of seconds",
            )?,
            auto_backup_enabled: parse_bool(env, "AUTO_BACKUP_ENABLED", true)?,
            auto_backup_interval_ms: parse_positive(
                env,
                "AUTO_BACKUP_INTERVAL",
                3_600_000,
                "number of milliseconds",
            )?,
            max_backups: usize::try_from(max_backups)
                .map_err(|_| err("MAX_BACKUPS", "too large"))?,
            auto_restore_enabled: parse_bool(env, "AUTO_RESTORE_ENABLED", true)?,
            upload_limit_bytes: parse_positive(
                env,
                "BACKUP_UPLOAD_LIMIT_MB",
                1024,
                "number of MiB",
            )?
            .checked_mul(1024 * 1024)
            .ok_or_else(|| err("BACKUP_UPLOAD_LIMIT_MB", "too large"))?,
            kafka: KafkaConfig {
                enabled: parse_bool(env, "KAFKA_ENABLED", false)?,
                brokers,
                topic,
                partitions: i32::try_from(partitions)
                    .map_err(|_| err("KAFKA_PARTITIONS", "too large"))?,
            },
            offsite: offsite(env)?,
            cors: cors(env)?,
            request_timeout: std::time::Duration::from_secs(30),
            demo: matches!(cli.command, Some(Cmd::Serve { demo: true })),
        })
    }

    /// Creates the three directories (or fails naming the one that is unusable).
    pub fn ensure_dirs(&self) -> Result<(), ConfigError> {
        ensure_dir("TASKLEDGER_DATA_DIR (--data-dir)", &self.data_dir)?;
        ensure_dir("TASKLEDGER_BACKUP_DIR (--backup-dir)", &self.backup_dir)?;
        ensure_dir("TASKLEDGER_RESTORE_DIR (--restore-dir)", &self.restore_dir)?;
        Ok(())
    }

    /// Defaults with the given dirs, for tests and embedding.
    pub fn for_dir(root: &Path) -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: root.join("storage"),
            backup_dir: root.join("backups"),
            restore_dir: root.join("restore"),
            admin_password: Some("admin-password".into()),
            token_ttl_secs: 86_400,
            auto_backup_enabled: false,
            auto_backup_interval_ms: 3_600_000,
            max_backups: 10,
            auto_restore_enabled: false,
            upload_limit_bytes: 1024 * 1024 * 1024,
            kafka: KafkaConfig {
                enabled: false,
                brokers: "localhost:9092".into(),
                topic: "todo-history-events".into(),
                partitions: 1,
            },
            offsite: None,
            cors: Cors::Off,
            request_timeout: std::time::Duration::from_secs(30),
            demo: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);
    impl Env for Map {
        fn get(&self, key: &str) -> Option<String> {
            self.0.get(key).map(|s| s.to_string())
        }
    }

    fn cfg(args: &[&str], env: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let cli = Cli::try_parse_from(args).unwrap();
        Config::from_cli(&cli, &Map(env.iter().copied().collect()))
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = cfg(&["taskledger"], &[]).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:3001");
        assert_eq!(c.data_dir, PathBuf::from("./storage"));
        assert_eq!(c.auto_backup_interval_ms, 3_600_000);
        assert_eq!(c.max_backups, 10);
        assert!(c.auto_backup_enabled && c.auto_restore_enabled && !c.kafka.enabled);
        assert_eq!(c.kafka.topic, "todo-history-events");
        assert_eq!(c.token_ttl_secs, 86_400);
    }

    #[test]
    fn bad_values_name_their_setting() {
        let e = cfg(&["taskledger", "--addr", "nope"], &[]).unwrap_err();
        assert!(e.to_string().contains("TASKLEDGER_ADDR"), "{e}");
        for (k, v) in [
            ("AUTO_BACKUP_INTERVAL", "0"),
            ("AUTO_BACKUP_INTERVAL", "-5"),
            ("MAX_BACKUPS", "0"),
            ("KAFKA_ENABLED", "maybe"),
        ] {
            let e = cfg(&["taskledger"], &[(k, v)]).unwrap_err();
            assert!(e.to_string().starts_with(&format!("invalid {k}")), "{e}");
        }
    }

    #[test]
    fn demo_flag_is_read_from_serve() {
        assert!(cfg(&["taskledger", "serve", "--demo"], &[]).unwrap().demo);
        assert!(!cfg(&["taskledger", "serve"], &[]).unwrap().demo);
    }
}
