//! The Kafka mirror against librdkafka's mock cluster (real Kafka protocol over
//! loopback TCP): message format, keys, headers, order, no user events, a broker
//! outage mid-stream, a restart resuming from the cursor, and the restore notice.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use taskledger::config::Config;

const TOPIC: &str = "todo-history-events";

mod common;

type Server = common::Authed;

async fn start(root: &Path, brokers: &str) -> Server {
    // RUST_LOG=info shows the relay's log lines when a test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let mut cfg = Config::for_dir(root);
    cfg.kafka.enabled = true;
    cfg.kafka.brokers = brokers.to_string();
    Server::start(cfg).await
}

impl Server {
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }
    async fn post(&self, path: &str, body: Value) -> Value {
        self.send(reqwest::Method::POST, path, body).await
    }
    async fn health(&self) -> Value {
        self.client
            .get(format!("{}/api/health", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[derive(Debug, Clone)]
struct Got {
    key: String,
    id: Option<u64>,
    value: Value,
}

/// Reads the topic from the beginning until `done` says enough, or the deadline.
fn consume(brokers: &str, secs: u64, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline && !done(&out) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let id = m.headers().and_then(|h| {
                h.iter()
                    .find(|h| h.key == "taskledger-event-id")
                    .and_then(|h| h.value)
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            });
            out.push(Got {
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).to_string(),
                id,
                value: serde_json::from_slice(m.payload().unwrap_or_default()).unwrap(),
            });
        }
    }
    out
}

async fn consume_async(brokers: String, secs: u64, want_ids: Vec<u64>) -> Vec<Got> {
    tokio::task::spawn_blocking(move || {
        consume(&brokers, secs, |got| {
            let ids: std::collections::HashSet<u64> = got.iter().filter_map(|g| g.id).collect();
            want_ids.iter().all(|i| ids.contains(i))
        })
    })
    .await
    .unwrap()
}

fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let c = MockCluster::new(1).unwrap();
    c.create_topic(TOPIC, 1, 1).unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutation_reaches_the_topic_in_order_with_the_seed_format() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &brokers).await;
    let g = s
        .post("/api/groups", json!({"name": "Project Alpha"}))
        .await["group"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = s
        .post(
            &format!("/api/groups/{g}/tasks"),
            json!({"name": "Feature X"}),
        )
        .await["task"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post(&format!("/api/tasks/{t}/comments"), json!({"text": "hi"}))
        .await;
    s.send(
        reqwest::Method::PUT,
        &format!("/api/tasks/{t}/status"),
        json!({"status": "Completed"}),
    )
    .await;
    s.send(
        reqwest::Method::PUT,
        &format!("/api/tasks/{t}"),
        json!({"name": "Feature Y"}),
    )
    .await;
    s.post(
        "/api/auth/users",
        json!({"username": "dhaya", "password": "password123"}),
    )
    .await; // never published
    s.send(
        reqwest::Method::PUT,
        &format!("/api/groups/{g}"),
        json!({"discussion": "notes"}),
    )
    .await;
    s.send(
        reqwest::Method::DELETE,
        &format!("/api/tasks/{t}"),
        json!({}),
    )
    .await;
    s.send(
        reqwest::Method::DELETE,
        &format!("/api/groups/{g}"),
        json!({}),
    )
    .await;
    // Events: 1 admin, 2..6 group work, 7 the user, 8..10 group work.
    let want: Vec<u64> = vec![2, 3, 4, 5, 6, 8, 9, 10];
    let got = consume_async(brokers.clone(), 30, want.clone()).await;
    let ids: Vec<u64> = got.iter().filter_map(|g| g.id).collect();
    // At-least-once: dedupe, but the first sighting order must be the log order.
    let mut seen = Vec::new();
    for i in &ids {
        if !seen.contains(i) {
            seen.push(*i);
        }
    }
    assert_eq!(seen, want, "order or completeness");
    let by_id: BTreeMap<u64, &Got> = got.iter().filter_map(|m| m.id.map(|i| (i, m))).collect();
    for m in by_id.values() {
        assert_eq!(m.key, g, "key is the group id");
        let p = &m.value["payload"];
        assert_eq!(p["groupId"], g.as_str());
        assert_eq!(p["workspace"], "default");
        assert_eq!(m.value["timestamp"], p["timestamp"]);
        assert!(m.value["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    let types: Vec<&str> = by_id
        .values()
        .map(|m| m.value["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "created",
            "created",
            "commented",
            "status_changed",
            "updated",
            "updated",
            "deleted",
            "deleted"
        ]
    );
    let created_task = &by_id[&3].value;
    assert_eq!(
        created_task["payload"],
        json!({"entity":"Task","entityId":t,"groupId":g,"groupName":"Project Alpha","taskId":t,"taskName":"Feature X",
               "changes":"Task 'Feature X' was created","user":"admin","workspace":"default",
               "timestamp":created_task["timestamp"]})
    );
    assert_eq!(by_id[&2].value["payload"]["entity"], "Group");
    assert_eq!(by_id[&2].value["payload"]["taskId"], Value::Null);
    assert_eq!(
        by_id[&5].value["payload"]["changes"],
        "Task 'Feature X' status changed from 'New' to 'Completed'"
    );
    assert!(
        got.iter().all(|m| !m.value.to_string().contains("dhaya")),
        "a user event was published"
    );
    let h = s.health().await;
    assert_eq!(h["kafka"]["enabled"], true);
    assert_eq!(h["kafka"]["lastPublishedEventId"], 10);
    assert_eq!(h["kafka"]["lag"], 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_restart_and_restore_lose_nothing() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &brokers).await;
    let g = s.post("/api/groups", json!({"name": "G"})).await["group"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    consume_async(brokers.clone(), 20, vec![2]).await;

    // Broker down: writes go on, fast, and are not failed.
    mock.broker_down(1).unwrap();
    let t0 = Instant::now();
    for i in 0..30 {
        s.post(
            &format!("/api/groups/{g}/tasks"),
            json!({"name": format!("during outage {i}")}),
        )
        .await;
    }
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "writes slowed by the outage: {:?}",
        t0.elapsed()
    );
    let h = s.health().await;
    assert!(h["kafka"]["lag"].as_u64().unwrap() > 0, "{h}");
    // Stop taskledger while the broker is down: the backlog must survive the restart.
    s.stop().await;
    mock.broker_up(1).unwrap();
    let s = start(dir.path(), &brokers).await;
    for i in 0..5 {
        s.post(
            &format!("/api/groups/{g}/tasks"),
            json!({"name": format!("after restart {i}")}),
        )
        .await;
    }
    let want: Vec<u64> = (2..=37).collect();
    let got = consume_async(brokers.clone(), 60, want.clone()).await;
    let mut seen = Vec::new();
    for id in got.iter().filter_map(|g| g.id) {
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    assert_eq!(seen, want, "every event, first seen in log order");

    // A restore: one `restored` notice, then only new events, nothing republished.
    let b = s.post("/api/backup/create", json!({})).await["backup"].clone();
    s.post(
        &format!("/api/groups/{g}/tasks"),
        json!({"name": "after backup"}),
    )
    .await; // 38
    s.post("/api/backup/restore", json!({"backupName": b["name"]}))
        .await; // log ends at 37 again
    s.post(
        &format!("/api/groups/{g}/tasks"),
        json!({"name": "after restore"}),
    )
    .await; // new 38
    let got = tokio::task::spawn_blocking({
        let brokers = brokers.clone();
        move || {
            consume(&brokers, 60, |got| {
                got.iter().filter(|m| m.id == Some(38)).count() >= 2
            })
        }
    })
    .await
    .unwrap();
    let notices: Vec<&Got> = got
        .iter()
        .filter(|m| m.value["eventType"] == "restored")
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].value["payload"]["entity"], "System");
    assert_eq!(notices[0].value["payload"]["backupName"], b["name"]);
    assert_eq!(notices[0].value["payload"]["lastEventId"], 37);
    let after: Vec<&Got> = got
        .iter()
        .skip_while(|m| m.value["eventType"] != "restored")
        .skip(1)
        .collect();
    assert!(
        after.iter().all(|m| m.id == Some(38)),
        "republished after restore: {:?}",
        after.iter().map(|m| m.id).collect::<Vec<_>>()
    );
    assert_eq!(
        after.last().unwrap().value["payload"]["taskName"],
        "after restore"
    );
    s.stop().await;
}
