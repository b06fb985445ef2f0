//! Time passing in a cluster (SPEC §6: "time passing that must be recorded
//! is written to the log by the owner"): two nodes in this process on a
//! manual clock. When an iteration's end passes, its owner's timers append
//! an expiry record; the owner applies it when it reads it back, and the
//! `achievement.expired` entry reaches every node's feed at the same cursor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use achievements_engine::clock::Clock;
use achievements_engine::cluster::{node::set_runtime, ClusterConfig, Node};
use achievements_engine::domain::catalog::CampaignPatch;
use achievements_engine::domain::{
    AchievementDraft, CustomerId, EntryType, EventId, Increase, RecurrencePolicy,
};
use achievements_engine::engine::{Catalog, Engine, EngineConfig, EventInput};
use achievements_engine::feed::webhooks::DeliveryConfig;
use achievements_engine::feed::{Feed, FeedWriter, Types, Webhooks};

use super::NatsCluster;

const PARTITIONS: u32 = 8;

struct InProcess {
    engine: Engine,
    feed: Arc<Feed>,
    node: Node,
    _dir: tempfile::TempDir,
}

async fn start(urls: &str, id: &str, clock: Clock) -> InProcess {
    let engine = Engine::start(
        EngineConfig {
            clock: clock.clone(),
            partitions: PARTITIONS,
            shards: 2,
            arbiters: 2,
            ..EngineConfig::default()
        },
        Catalog::default(),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let feed =
        Feed::open(&dir.path().join("feed"), chrono::Duration::days(7), clock).expect("feed");
    let writer = FeedWriter::start(feed.clone()).expect("writer");
    let config = ClusterConfig {
        urls: urls.into(),
        node_id: id.into(),
        address: format!("{id}.invalid:8080"),
        partitions: PARTITIONS,
        replicas: 1,
        lease: Duration::from_secs(2),
        wait: Duration::from_secs(5),
        snapshot_every: Duration::from_secs(60),
        feed_retention: Duration::from_secs(7 * 86_400),
    };
    let webhooks = Webhooks::open(
        &dir.path().join("webhooks"),
        feed.clone(),
        engine.clock().clone(),
        DeliveryConfig::new(24, true),
    )
    .expect("webhooks");
    webhooks.set_delivering(false);
    webhooks.start().expect("deliveries");
    let node = Node::start(
        config,
        engine.clone(),
        feed.clone(),
        writer,
        Arc::new(webhooks),
    )
    .await
    .expect("the node joins");
    InProcess {
        engine,
        feed,
        node,
        _dir: dir,
    }
}

/// (cursor, type, customer) of everything in a node's feed.
fn entries(n: &InProcess) -> Vec<(u64, EntryType, String)> {
    let app = achievements_engine::domain::ApplicationId(1);
    n.feed
        .read(app, None, 1000, Types::all())
        .expect("read")
        .entries
        .iter()
        .map(|s| {
            (
                s.seq,
                s.entry.transition.kind,
                s.entry.customer.as_str().to_owned(),
            )
        })
        .collect()
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn an_owner_records_expiry_in_the_log_and_every_node_tells_it_once() {
    let _one = super::serial();
    let nats = NatsCluster::start(1);
    let urls = nats.urls();
    // Expiries are published from shard threads, onto the node's runtime.
    set_runtime(tokio::runtime::Handle::current());
    let clock = Clock::manual("2026-03-01T10:00:00Z".parse().expect("instant"));
    let a = start(&urls, "a", clock.clone()).await;
    eventually("node a owns every partition", || {
        a.node.stats().serving == u64::from(PARTITIONS)
    })
    .await;

    let app = a
        .engine
        .create_application("shop".into(), chrono_tz::UTC, String::new())
        .await
        .expect("application");
    let campaign = a
        .engine
        .create_campaign(
            app.id,
            CampaignPatch {
                name: Some("c".into()),
                ..CampaignPatch::default()
            },
        )
        .await
        .expect("campaign");
    let entry = a
        .engine
        .create_achievement(
            app.id,
            campaign.id,
            AchievementDraft {
                name: "daily".into(),
                title: "Daily".into(),
                target: 5.into(),
                period: Some("1D".into()),
                recurrence_policy: RecurrencePolicy::OnExpiration,
                ..AchievementDraft::default()
            },
        )
        .await
        .expect("achievement");
    for (i, customer) in ["ann", "bob"].iter().enumerate() {
        a.engine
            .increase(EventInput {
                customer: CustomerId::parse(customer, "/integrationId").expect("valid"),
                entry: entry.clone(),
                increase: Increase {
                    delta: 2.into(),
                    at: None,
                    event_id: Some(EventId::parse(&format!("e{i}"), "/eventId").expect("valid")),
                },
            })
            .await
            .expect("applied");
    }
    eventually("both starts are in the feed", || entries(&a).len() == 2).await;

    // A day and a bit later the owner's timers fire: each iteration's end
    // becomes a record in its partition's log, and an entry.
    clock.advance(chrono::Duration::hours(25));
    eventually("both expiries are in the feed", || {
        entries(&a)
            .iter()
            .filter(|(_, t, _)| *t == EntryType::Expired)
            .count()
            == 2
    })
    .await;
    let told = entries(&a);

    // A second node's feed follows the same stream to the same cursors;
    // taking partitions over replays the expiry records without telling
    // them again.
    let b = start(&urls, "b", clock.clone()).await;
    eventually("node b has the same feed", || entries(&b) == told).await;
    eventually("the partitions are shared", || {
        a.node.stats().owned + b.node.stats().owned == u64::from(PARTITIONS)
            && b.node.stats().serving > 0
    })
    .await;
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(entries(&a), told, "a takeover told something again");
    assert_eq!(entries(&b), told);
    // Progress read through either node: the iterations are expired.
    for n in [&a, &b] {
        for customer in ["ann", "bob"] {
            let lists = n
                .engine
                .customer_progress(
                    app.id,
                    &CustomerId::parse(customer, "/integrationId").expect("valid"),
                    std::slice::from_ref(&entry),
                )
                .await
                .expect("read");
            assert_eq!(
                lists[0][0].status,
                achievements_engine::domain::ProgressStatus::Expired,
                "{customer}"
            );
        }
    }
}
