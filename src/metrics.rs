//! Prometheus metrics: one registry, created once, rendered at `GET /metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub(crate) requests: IntCounterVec,
    pub(crate) events_appended: IntCounter,
    pub(crate) append_seconds: Histogram,
    pub(crate) batch_size: Histogram,
    pub(crate) backups: IntCounterVec,
    pub(crate) backup_seconds: HistogramVec,
    pub(crate) restores: IntCounterVec,
    pub(crate) restore_seconds: Histogram,
    pub(crate) restore_dir_scans: IntCounter,
    pub(crate) restore_dir_waiting: IntGauge,
    pub(crate) kafka_lag: IntGauge,
    pub(crate) kafka_last_published: IntGauge,
    pub(crate) kafka_connected: IntGauge,
    pub(crate) kafka_published: IntCounter,
    pub(crate) offsite_pending: IntGauge,
    pub(crate) offsite_failing: IntGauge,
    /// When a backup last held every event: one was written, or a scheduled run
    /// found nothing new since the newest (alerts compare it with the interval).
    pub(crate) backup_current_at: IntGauge,
    pub(crate) backup_interval_seconds: IntGauge,
    pub(crate) writable: IntGauge,
    pub(crate) kafka_enabled: IntGauge,
    /// Last event of the local generation the broker acknowledged on the log topic.
    pub(crate) log_topic_published: IntGauge,
    pub(crate) replica_applied_seq: IntGauge,
    pub(crate) replica_lag_events: IntGauge,
    pub(crate) replica_lag_seconds: prometheus::Gauge,
    pub(crate) stream_open: IntGauge,
    pub(crate) stream_entries_sent: IntCounter,
    pub(crate) stream_dropped_slow: IntCounter,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    // Names are fixed literals and registered once per registry, so this cannot clash.
    r.register(Box::new(c.clone()))
        .expect("metric names are unique within the registry");
    c
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let ok = "metric options are static and valid";
        let lat = vec![
            0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0,
        ];
        let long = vec![0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0];
        Metrics {
            requests: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "taskledger_http_requests_total",
                        "HTTP requests by route and status",
                    ),
                    &["method", "route", "status"],
                )
                .expect(ok),
            ),
            events_appended: reg(
                &r,
                IntCounter::new(
                    "taskledger_events_appended_total",
                    "Events appended to the log",
                )
                .expect(ok),
            ),
            append_seconds: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "taskledger_append_seconds",
                        "Group-commit latency: batch start to fsync done",
                    )
                    .buckets(lat),
                )
                .expect(ok),
            ),
            batch_size: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("taskledger_append_batch_size", "Commands per group commit")
                        .buckets(vec![
                            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
                        ]),
                )
                .expect(ok),
            ),
            backups: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "taskledger_backups_total",
                        "Backups written, by kind and result",
                    ),
                    &["kind", "result"],
                )
                .expect(ok),
            ),
            backup_seconds: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new("taskledger_backup_seconds", "Backup duration")
                        .buckets(long.clone()),
                    &["kind"],
                )
                .expect(ok),
            ),
            restores: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "taskledger_restores_total",
                        "Restores, by source and result",
                    ),
                    &["source", "result"],
                )
                .expect(ok),
            ),
            restore_seconds: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("taskledger_restore_seconds", "Restore duration")
                        .buckets(long),
                )
                .expect(ok),
            ),
            restore_dir_scans: reg(
                &r,
                IntCounter::new(
                    "taskledger_restore_dir_scans_total",
                    "Passes of the drop-folder watcher over the restore dir",
                )
                .expect(ok),
            ),
            restore_dir_waiting: reg(
                &r,
                IntGauge::new(
                    "taskledger_restore_dir_waiting_files",
                    "Files in the restore dir that end early, kept until their copy goes on",
                )
                .expect(ok),
            ),
            kafka_lag: reg(
                &r,
                IntGauge::new(
                    "taskledger_kafka_lag",
                    "Events not yet acknowledged by Kafka",
                )
                .expect(ok),
            ),
            kafka_last_published: reg(
                &r,
                IntGauge::new(
                    "taskledger_kafka_last_published_id",
                    "Sequence of the last event Kafka acknowledged",
                )
                .expect(ok),
            ),
            kafka_connected: reg(
                &r,
                IntGauge::new(
                    "taskledger_kafka_connected",
                    "1 when the Kafka relay reaches a broker",
                )
                .expect(ok),
            ),
            kafka_published: reg(
                &r,
                IntCounter::new(
                    "taskledger_kafka_published_total",
                    "Messages acknowledged by Kafka",
                )
                .expect(ok),
            ),
            offsite_pending: reg(
                &r,
                IntGauge::new(
                    "taskledger_offsite_pending",
                    "Local backups not yet confirmed off-site",
                )
                .expect(ok),
            ),
            offsite_failing: reg(
                &r,
                IntGauge::new(
                    "taskledger_offsite_failing",
                    "1 while off-site copies fail (retried with backoff)",
                )
                .expect(ok),
            ),
            backup_current_at: reg(
                &r,
                IntGauge::new(
                    "taskledger_backup_current_timestamp_seconds",
                    "Unix time at which a backup last held every event (written, or nothing new since)",
                )
                .expect(ok),
            ),
            backup_interval_seconds: reg(
                &r,
                IntGauge::new(
                    "taskledger_backup_interval_seconds",
                    "AUTO_BACKUP_INTERVAL in seconds (0: automatic backups off)",
                )
                .expect(ok),
            ),
            writable: reg(
                &r,
                IntGauge::new(
                    "taskledger_writable",
                    "1 while writes are accepted, 0 after a write failure (read-only)",
                )
                .expect(ok),
            ),
            kafka_enabled: reg(
                &r,
                IntGauge::new("taskledger_kafka_enabled", "1 when KAFKA_ENABLED").expect(ok),
            ),
            log_topic_published: reg(
                &r,
                IntGauge::new(
                    "taskledger_log_topic_published_id",
                    "Last event the broker acknowledged on KAFKA_LOG_TOPIC",
                )
                .expect(ok),
            ),
            replica_applied_seq: reg(
                &r,
                IntGauge::new(
                    "taskledger_replica_applied_seq",
                    "Last event of the primary's log this replica has applied, durably",
                )
                .expect(ok),
            ),
            replica_lag_events: reg(
                &r,
                IntGauge::new(
                    "taskledger_replica_lag_events",
                    "Events the primary has made durable that this replica has not applied",
                )
                .expect(ok),
            ),
            replica_lag_seconds: reg(
                &r,
                prometheus::Gauge::new(
                    "taskledger_replica_lag_seconds",
                    "How old the primary state this replica serves is (0 when live and caught up)",
                )
                .expect(ok),
            ),
            stream_open: reg(
                &r,
                IntGauge::new("taskledger_stream_open", "Open live-update streams").expect(ok),
            ),
            stream_entries_sent: reg(
                &r,
                IntCounter::new(
                    "taskledger_stream_entries_sent_total",
                    "Activity entries queued to live-update streams",
                )
                .expect(ok),
            ),
            stream_dropped_slow: reg(
                &r,
                IntCounter::new(
                    "taskledger_stream_dropped_slow_total",
                    "Live-update clients disconnected for not reading their stream",
                )
                .expect(ok),
            ),
            registry: r,
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
