//! Configuration: every setting is one clap field (flag, environment variable,
//! default and `--help` text in one declaration), grouped into the slice each
//! component reads. Values are checked as they are parsed; an invalid one becomes
//! a one-line [`ConfigError`] naming the setting, and `main` exits with code 2.
//! Flags win over the environment. Touches nothing but the process's arguments
//! and environment (and the directories, in [`Config::ensure_dirs`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Read by the log filter, not by us: listed so `--help` names it.
const AFTER_HELP: &str = "\
Also read from the environment:
  RUST_LOG   log filter (default info), e.g. taskledger=debug";

#[derive(Debug, Parser)]
#[command(
    name = "taskledger",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TASKLEDGER_COMMIT"), ")"),
    about = "Self-hosted, event-sourced task server",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub(crate) settings: Settings,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

/// Every setting, by the component that reads it.
#[derive(Debug, Clone, Args)]
pub(crate) struct Settings {
    #[command(flatten)]
    http: HttpConfig,
    #[command(flatten)]
    store: StoreConfig,
    #[command(flatten)]
    auth: AuthConfig,
    #[command(flatten)]
    backup: BackupConfig,
    #[command(flatten)]
    kafka: KafkaConfig,
    #[command(flatten)]
    offsite: OffsiteArgs,
    #[command(flatten)]
    replica: ReplicaConfig,
}

/// The HTTP server's settings.
#[derive(Debug, Clone, Args)]
pub struct HttpConfig {
    /// Address to listen on.
    #[arg(long, env = "TASKLEDGER_ADDR", default_value = "127.0.0.1:3001", value_parser = parse_addr, global = true)]
    pub addr: SocketAddr,
    /// Browser origins allowed to call the API: comma-separated, or * (default: same origin only).
    #[arg(long = "cors-origin", env = "CORS_ORIGIN", default_value = "", value_name = "ORIGINS", value_parser = parse_cors, hide_default_value = true, global = true)]
    pub cors: Cors,
    /// Log lines as text or as one JSON object each.
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the store lives.
#[derive(Debug, Clone, Args)]
pub struct StoreConfig {
    /// Where the event log and projections live.
    #[arg(
        long,
        env = "TASKLEDGER_DATA_DIR",
        default_value = "./storage",
        global = true
    )]
    pub data_dir: PathBuf,
}

/// Sessions and the first admin.
#[derive(Clone, Args)]
pub struct AuthConfig {
    /// Password of the first 'admin' (default: generated on first start, printed once).
    #[arg(long, env = "TASKLEDGER_ADMIN_PASSWORD", value_parser = parse_password, hide_env_values = true, global = true)]
    pub(crate) admin_password: Option<String>,
    /// Session lifetime in seconds.
    #[arg(long, env = "TASKLEDGER_TOKEN_TTL_SECS", default_value = "86400", value_parser = positive::<u64>, global = true)]
    pub token_ttl_secs: u64,
}

// The password never reaches a log line.
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<set>"),
            )
            .field("token_ttl_secs", &self.token_ttl_secs)
            .finish()
    }
}

/// The backup component's settings: schedule, rotation, drop folder, uploads.
#[derive(Debug, Clone, Args)]
pub struct BackupConfig {
    /// Where backups are written.
    #[arg(
        long,
        env = "TASKLEDGER_BACKUP_DIR",
        default_value = "./backups",
        global = true
    )]
    pub backup_dir: PathBuf,
    /// Drop folder: a backup placed here is restored automatically.
    #[arg(
        long,
        env = "TASKLEDGER_RESTORE_DIR",
        default_value = "./restore",
        global = true
    )]
    pub restore_dir: PathBuf,
    /// Automatic backups.
    #[arg(long, env = "AUTO_BACKUP_ENABLED", default_value = "true", value_name = "BOOL", value_parser = parse_bool, action = ArgAction::Set, global = true)]
    pub auto_backup_enabled: bool,
    /// Milliseconds between automatic backups.
    #[arg(long = "auto-backup-interval", env = "AUTO_BACKUP_INTERVAL", value_name = "MS", default_value = "3600000", value_parser = positive::<u64>, global = true)]
    pub auto_backup_interval_ms: u64,
    /// Automatic backups kept (manual, uploaded and pre-restore ones are never rotated).
    #[arg(long, env = "MAX_BACKUPS", default_value = "10", value_parser = positive::<usize>, global = true)]
    pub max_backups: usize,
    /// Watch the restore dir and restore what is dropped into it.
    #[arg(long, env = "AUTO_RESTORE_ENABLED", default_value = "true", value_name = "BOOL", value_parser = parse_bool, action = ArgAction::Set, global = true)]
    pub auto_restore_enabled: bool,
    /// Largest backup upload or import body, in MiB.
    #[arg(long = "backup-upload-limit-mb", env = "BACKUP_UPLOAD_LIMIT_MB", value_name = "MIB", default_value = "1024", value_parser = parse_upload_limit, global = true)]
    pub(crate) upload_limit_bytes: u64,
}

/// The Kafka mirror's settings (SPEC §4).
#[derive(Debug, Clone, Args)]
pub struct KafkaConfig {
    /// Mirror events to Kafka.
    #[arg(long = "kafka-enabled", env = "KAFKA_ENABLED", default_value = "false", value_name = "BOOL", value_parser = parse_bool, action = ArgAction::Set, global = true)]
    pub enabled: bool,
    /// Comma-separated brokers.
    #[arg(long = "kafka-broker", env = "KAFKA_BROKER", default_value = "localhost:9092", value_parser = parse_brokers, global = true)]
    pub brokers: String,
    /// Topic of the event mirror.
    #[arg(long = "kafka-topic", env = "KAFKA_TOPIC", default_value = "todo-history-events", value_parser = parse_topic, global = true)]
    pub(crate) topic: String,
    /// Partitions when the topic is created.
    #[arg(long = "kafka-partitions", env = "KAFKA_PARTITIONS", default_value = "1", value_parser = positive::<i32>, global = true)]
    pub(crate) partitions: i32,
    /// Topic of the whole log, for replicas (SPEC §12; default: off). Carries password hashes.
    #[arg(long = "kafka-log-topic", env = "KAFKA_LOG_TOPIC", value_parser = parse_optional_topic, global = true)]
    pub log_topic: Option<String>,
    /// When a write is acknowledged (SPEC §12): `async` after the local fsync,
    /// `sync` also after the broker took its log-topic message.
    #[arg(long = "kafka-commit", env = "KAFKA_COMMIT", default_value = "async", value_parser = parse_commit, global = true)]
    pub(crate) commit: Commit,
    /// In sync mode, how long a write waits for the broker before it is answered 503.
    #[arg(long = "kafka-commit-timeout-ms", env = "KAFKA_COMMIT_TIMEOUT_MS", default_value = "5000", value_parser = positive::<u64>, global = true)]
    pub(crate) commit_timeout_ms: u64,
}

/// `KAFKA_COMMIT`: where a write's acknowledgement waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    Async,
    Sync,
}

impl Commit {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Commit::Async => "async",
            Commit::Sync => "sync",
        }
    }
}

fn parse_commit(v: &str) -> Result<Commit, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "async" => Ok(Commit::Async),
        "sync" => Ok(Commit::Sync),
        _ => Err(format!("must be sync or async, got {v:?}")),
    }
}

/// How this process takes part in a group of nodes (SPEC §12).
#[derive(Debug, Clone, Args)]
pub struct ReplicaConfig {
    /// Where a replica sends writes (307 with the same path and query); unset: 503.
    #[arg(long = "primary-url", env = "PRIMARY_URL", value_parser = parse_primary_url, global = true)]
    pub primary_url: Option<String>,
}

/// Off-site copies as given (SPEC §9); [`Config::offsite`] is what they mean.
#[derive(Clone, Args)]
struct OffsiteArgs {
    /// Bucket for off-site copies of backups (default: off).
    #[arg(long = "s3-bucket-name", env = "S3_BUCKET_NAME", value_parser = optional, global = true)]
    bucket: Option<String>,
    /// S3-compatible endpoint: MinIO, R2, Garage, … (default AWS).
    #[arg(long = "aws-endpoint-url", env = "AWS_ENDPOINT_URL", value_parser = parse_endpoint, global = true)]
    endpoint: Option<String>,
    /// Region of the bucket.
    #[arg(long = "aws-region", env = "AWS_REGION", default_value = "us-east-1", value_parser = nonempty, global = true)]
    region: String,
    /// Access key id.
    #[arg(long = "aws-access-key-id", env = "AWS_ACCESS_KEY_ID", value_parser = optional, hide_env_values = true, global = true)]
    access_key_id: Option<String>,
    /// Secret access key.
    #[arg(long = "aws-secret-access-key", env = "AWS_SECRET_ACCESS_KEY", value_parser = optional, hide_env_values = true, global = true)]
    secret_access_key: Option<String>,
    /// Key prefix in the bucket.
    #[arg(long = "s3-prefix", env = "S3_PREFIX", default_value = "taskledger/", value_parser = parse_prefix, global = true)]
    prefix: String,
    /// latest: a start on an empty store restores the newest off-site backup first.
    #[arg(long = "restore-from-offsite", env = "RESTORE_FROM_OFFSITE", value_parser = parse_latest, global = true)]
    restore_from_offsite: Option<bool>,
}

// Credentials never reach a log line, not even a debug one.
impl std::fmt::Debug for OffsiteArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsiteArgs")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the server (the default).
    Serve {
        /// Also create the demo members Avinash, Dhaya, Ashok, Arun, Cathrine.
        #[arg(long)]
        demo: bool,
    },
    /// Run a read-only replica that follows the primary through KAFKA_LOG_TOPIC (SPEC §12).
    Replica,
    /// Make this (stopped) replica's data dir the primary: the next `serve` or
    /// `replica` catches up with the log topic, fences the old primary and takes writes.
    Promote,
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

#[derive(Clone, Debug)]
pub struct Config {
    pub http: HttpConfig,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub backup: BackupConfig,
    pub kafka: KafkaConfig,
    pub offsite: Option<OffsiteConfig>,
    pub replica: ReplicaConfig,
    /// Whether this process is a replica (`taskledger replica`) or a primary.
    pub role: Role,
    /// Requests taking longer are answered 503 (SPEC §11: 30 s; streaming backup
    /// routes exempt). Not a setting; tests shorten it.
    pub request_timeout: Duration,
    pub(crate) demo: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// Same origin only (the default).
    Off,
    Any,
    Origins(Vec<String>),
}

// Value parsers: each answers the reason alone; the setting's name is added
// where clap's error is turned into a [`ConfigError`].

fn parse_addr(v: &str) -> Result<SocketAddr, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a host:port address"))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {v:?}")),
    }
}

fn positive<T: TryFrom<u64>>(v: &str) -> Result<T, String> {
    let bad = || format!("must be a positive integer, got {v:?}");
    match v.trim().parse::<i128>() {
        Ok(n) if n > 0 => u64::try_from(n)
            .ok()
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| format!("{v:?} is too large")),
        _ => Err(bad()),
    }
}

fn parse_upload_limit(v: &str) -> Result<u64, String> {
    positive::<u64>(v)?
        .checked_mul(1024 * 1024)
        .ok_or_else(|| format!("{v:?} is too large"))
}

/// An empty value means unset, as if the variable were not there (an empty
/// `FOO=` in a compose file is common); [`Config::from_cli`] drops it.
fn parse_password(v: &str) -> Result<String, String> {
    if !v.is_empty() {
        crate::domain::decide::check_password(v).map_err(|e| e.to_string())?;
    }
    Ok(v.to_string())
}

/// Trimmed; empty means unset (see [`parse_password`]).
fn optional(v: &str) -> Result<String, String> {
    Ok(v.trim().to_string())
}

fn nonempty(v: &str) -> Result<String, String> {
    match v.trim() {
        "" => Err("must not be empty".into()),
        t => Ok(t.to_string()),
    }
}

fn parse_brokers(v: &str) -> Result<String, String> {
    nonempty(v)
}

fn parse_topic(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 249
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    ok.then(|| v.to_string())
        .ok_or_else(|| format!("{v:?} is not a valid topic name"))
}

/// Empty means unset (see [`parse_password`]).
fn parse_optional_topic(v: &str) -> Result<String, String> {
    match v.trim() {
        "" => Ok(String::new()),
        t => parse_topic(t),
    }
}

fn parse_primary_url(v: &str) -> Result<String, String> {
    let u = v.trim().trim_end_matches('/').to_string();
    let ok = u.is_empty()
        || (u.starts_with("http://") || u.starts_with("https://"))
            && axum::http::HeaderValue::from_str(&u).is_ok();
    ok.then_some(u)
        .ok_or_else(|| format!("{v:?} is not an http(s) URL like http://primary:3001"))
}

fn parse_cors(raw: &str) -> Result<Cors, String> {
    let list: Vec<String> = raw
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect();
    if list.is_empty() {
        return Ok(Cors::Off);
    }
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
            return Err(format!(
                "{o:?} is not an origin like https://tasks.example.com"
            ));
        }
    }
    Ok(Cors::Origins(list))
}

fn parse_endpoint(v: &str) -> Result<String, String> {
    let e = v.trim().to_string();
    (e.is_empty() || e.starts_with("http://") || e.starts_with("https://"))
        .then_some(e)
        .ok_or_else(|| format!("{v:?} is not an http(s) URL"))
}

fn parse_prefix(v: &str) -> Result<String, String> {
    if v.starts_with('/') || v.contains("..") {
        return Err(format!("{v:?} is not a usable key prefix"));
    }
    let mut prefix = v.to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(prefix)
}

fn parse_latest(v: &str) -> Result<bool, String> {
    match v.trim() {
        "" => Ok(false),
        "latest" => Ok(true),
        other => Err(format!("the only value is latest, got {other:?}")),
    }
}

impl OffsiteArgs {
    fn resolve(&self) -> Result<Option<OffsiteConfig>, ConfigError> {
        let set = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let restore_latest = self.restore_from_offsite.unwrap_or(false);
        let Some(bucket) = set(&self.bucket) else {
            if restore_latest {
                return Err(err("RESTORE_FROM_OFFSITE", "needs S3_BUCKET_NAME"));
            }
            return Ok(None);
        };
        Ok(Some(OffsiteConfig {
            bucket,
            endpoint: set(&self.endpoint),
            region: self.region.clone(),
            access_key_id: set(&self.access_key_id),
            secret_access_key: set(&self.secret_access_key),
            prefix: self.prefix.clone(),
            restore_latest,
        }))
    }
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
    /// The parsed command line as a configuration (the checks that span two settings).
    pub fn from_cli(cli: &Cli) -> Result<Config, ConfigError> {
        let s = &cli.settings;
        let mut auth = s.auth.clone();
        auth.admin_password = auth.admin_password.filter(|p| !p.is_empty());
        let mut kafka = s.kafka.clone();
        kafka.log_topic = kafka.log_topic.filter(|t| !t.is_empty());
        let mut replica = s.replica.clone();
        replica.primary_url = replica.primary_url.filter(|u| !u.is_empty());
        let role = match cli.command {
            Some(Cmd::Replica) => Role::Replica,
            _ => Role::Primary,
        };
        if kafka.commit == Commit::Sync && kafka.log_topic.is_none() {
            return Err(err(
                "KAFKA_COMMIT",
                "sync waits for the log topic's broker: set KAFKA_LOG_TOPIC too",
            ));
        }
        if role == Role::Replica && kafka.log_topic.is_none() {
            return Err(err(
                "KAFKA_LOG_TOPIC",
                "a replica needs the log topic it follows (and KAFKA_BROKER)",
            ));
        }
        Ok(Config {
            http: s.http.clone(),
            store: s.store.clone(),
            auth,
            backup: s.backup.clone(),
            kafka,
            offsite: s.offsite.resolve()?,
            replica,
            role,
            request_timeout: Duration::from_secs(30),
            demo: matches!(cli.command, Some(Cmd::Serve { demo: true })),
        })
    }

    /// Parses the command line (and the environment) into a [`Cli`]; an invalid
    /// value becomes one line naming its setting. `--help`, `--version` and usage
    /// mistakes are clap's own answers.
    pub fn parse_cli<I, T>(args: I) -> Result<Cli, CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_from(args).map_err(|e| match setting_error(&e) {
            Some(c) => CliError::Setting(c),
            None => CliError::Clap(e),
        })
    }

    /// Creates the three directories (or fails naming the one that is unusable).
    pub fn ensure_dirs(&self) -> Result<(), ConfigError> {
        ensure_dir("TASKLEDGER_DATA_DIR (--data-dir)", &self.store.data_dir)?;
        ensure_dir(
            "TASKLEDGER_BACKUP_DIR (--backup-dir)",
            &self.backup.backup_dir,
        )?;
        ensure_dir(
            "TASKLEDGER_RESTORE_DIR (--restore-dir)",
            &self.backup.restore_dir,
        )?;
        Ok(())
    }

    /// The declared defaults (the environment ignored) with the given dirs, port 0,
    /// a known admin password and the background work off: for tests and embedding.
    pub fn for_dir(root: &Path) -> Config {
        let cmd = Cli::command().mut_args(|a| a.env(None));
        let matches = cmd
            .try_get_matches_from(["taskledger"])
            .expect("the declared defaults parse");
        let cli = Cli::from_arg_matches(&matches).expect("the declared defaults parse");
        let mut c = Config::from_cli(&cli).expect("the declared defaults are consistent");
        c.http.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        c.store.data_dir = root.join("storage");
        c.backup.backup_dir = root.join("backups");
        c.backup.restore_dir = root.join("restore");
        c.auth.admin_password = Some("admin-password".into());
        c.backup.auto_backup_enabled = false;
        c.backup.auto_restore_enabled = false;
        c
    }
}

/// Why the command line was not accepted.
#[derive(Debug)]
pub enum CliError {
    /// A setting's value is invalid: one line, exit code 2.
    Setting(ConfigError),
    /// Help, version, or a usage mistake: clap prints it and picks the exit code.
    Clap(clap::Error),
}

/// An invalid value, as `invalid ENV (--flag): reason`.
fn setting_error(e: &clap::Error) -> Option<ConfigError> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg
        .strip_prefix("--")?
        .split([' ', '='])
        .next()?
        .to_string();
    let cmd = Cli::command();
    let declared = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long.as_str()))?;
    let setting = match declared.get_env() {
        Some(env) => format!("{} (--{long})", env.to_string_lossy()),
        None => format!("--{long}"),
    };
    let reason = match std::error::Error::source(e) {
        Some(why) => why.to_string(),
        None => {
            let given = match e.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(v)) => format!("{v:?}"),
                _ => "the value".into(),
            };
            match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(ok)) => {
                    format!("expected one of {}, got {given}", ok.join(", "))
                }
                _ => format!("{given} is not accepted"),
            }
        }
    };
    Some(ConfigError { setting, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<Config, ConfigError> {
        let cli = Config::parse_cli(args).map_err(|e| match e {
            CliError::Setting(c) => c,
            CliError::Clap(e) => panic!("{e}"),
        })?;
        Config::from_cli(&cli)
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::for_dir(Path::new("/x"));
        assert_eq!(c.backup.auto_backup_interval_ms, 3_600_000);
        assert_eq!(c.backup.max_backups, 10);
        assert!(!c.kafka.enabled);
        assert_eq!(c.kafka.topic, "todo-history-events");
        assert_eq!(c.kafka.brokers, "localhost:9092");
        assert_eq!(c.auth.token_ttl_secs, 86_400);
        assert_eq!(c.backup.upload_limit_bytes, 1024 * 1024 * 1024);
        assert_eq!(c.http.cors, Cors::Off);
        assert_eq!(c.http.log_format, LogFormat::Text);
        assert!(c.offsite.is_none());
        // What the declarations say, for the settings for_dir does not override.
        let cmd = Cli::command();
        let default = |long: &str| {
            let a = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap();
            a.get_default_values()[0].to_string_lossy().to_string()
        };
        assert_eq!(default("addr"), "127.0.0.1:3001");
        assert_eq!(default("data-dir"), "./storage");
        assert_eq!(default("auto-backup-enabled"), "true");
        assert_eq!(default("auto-restore-enabled"), "true");
    }

    #[test]
    fn every_setting_has_one_flag_and_one_env() {
        let cmd = Cli::command();
        let envs: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().to_string()))
            .collect();
        for spec in [
            "TASKLEDGER_ADDR",
            "TASKLEDGER_DATA_DIR",
            "TASKLEDGER_BACKUP_DIR",
            "TASKLEDGER_RESTORE_DIR",
            "TASKLEDGER_ADMIN_PASSWORD",
            "TASKLEDGER_TOKEN_TTL_SECS",
            "AUTO_BACKUP_ENABLED",
            "AUTO_BACKUP_INTERVAL",
            "MAX_BACKUPS",
            "AUTO_RESTORE_ENABLED",
            "BACKUP_UPLOAD_LIMIT_MB",
            "KAFKA_ENABLED",
            "KAFKA_BROKER",
            "KAFKA_TOPIC",
            "KAFKA_PARTITIONS",
            "CORS_ORIGIN",
            "LOG_FORMAT",
            "S3_BUCKET_NAME",
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "S3_PREFIX",
            "RESTORE_FROM_OFFSITE",
            "KAFKA_LOG_TOPIC",
            "PRIMARY_URL",
            "KAFKA_COMMIT",
            "KAFKA_COMMIT_TIMEOUT_MS",
        ] {
            assert_eq!(envs.iter().filter(|e| *e == spec).count(), 1, "{spec}");
        }
        assert!(cmd
            .get_arguments()
            .all(|a| a.get_env().is_none() || a.get_long().is_some()));
    }

    #[test]
    fn bad_values_name_their_setting() {
        let e = cfg(&["taskledger", "--addr", "nope"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid TASKLEDGER_ADDR (--addr): \"nope\" is not a host:port address"
        );
        for (flag, v, env) in [
            ("--auto-backup-interval", "0", "AUTO_BACKUP_INTERVAL"),
            ("--auto-backup-interval", "-5", "AUTO_BACKUP_INTERVAL"),
            ("--max-backups", "0", "MAX_BACKUPS"),
            ("--kafka-enabled", "maybe", "KAFKA_ENABLED"),
            ("--log-format", "xml", "LOG_FORMAT"),
            ("--cors-origin", "tasks.example.com", "CORS_ORIGIN"),
            ("--kafka-topic", "a b", "KAFKA_TOPIC"),
        ] {
            let e = cfg(&["taskledger", &format!("{flag}={v}")]).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("invalid {env} ({flag}): ")),
                "{e}"
            );
        }
        let e = cfg(&["taskledger", "--restore-from-offsite", "latest"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid RESTORE_FROM_OFFSITE: needs S3_BUCKET_NAME"
        );
    }

    #[test]
    fn demo_flag_is_read_from_serve() {
        assert!(cfg(&["taskledger", "serve", "--demo"]).unwrap().demo);
        assert!(!cfg(&["taskledger", "serve"]).unwrap().demo);
    }

    #[test]
    fn offsite_settings_resolve_together() {
        let c = cfg(&["taskledger", "--s3-bucket-name", "b", "--s3-prefix", "x"]).unwrap();
        let o = c.offsite.unwrap();
        assert_eq!(
            (o.bucket.as_str(), o.prefix.as_str(), o.region.as_str()),
            ("b", "x/", "us-east-1")
        );
        assert!(!o.restore_latest);
    }
}
