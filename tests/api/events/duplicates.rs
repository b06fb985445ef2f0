//! Idempotency: a repeated event id answers the original effects and changes
//! nothing, rejected events are not remembered, and concurrent retries count once.

use std::collections::{HashMap, HashSet};

use chrono::Duration;
use serde_json::json;

use crate::common::*;
use crate::helpers::*;

#[actix_web::test]
async fn duplicates_return_the_original_effects_and_change_nothing() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "dup", "period": "1D", "target": 10,
                               "recurrencePolicy": "on_expiration"}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let body = json!({"integrationId": "c", "achievementId": id, "delta": 3, "eventId": "e1"});
    let original = applied(&app.event(&key, body.clone()).await);
    let again = app.event(&key, body.clone()).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let again = again.json();
    assert_eq!(again["outcome"], "duplicate", "{again}");
    assert_eq!(again["effects"], original["effects"]);
    // Same id with a different delta and addressed by name: still a duplicate.
    let other = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementName": "dup", "delta": 5, "eventId": "e1"}),
        )
        .await
        .json();
    assert_eq!(other["outcome"], "duplicate", "{other}");
    assert_eq!(other["effects"], original["effects"]);
    assert_eq!(app.progress(&key, "c", id).await, Some(json!(3)));
    // The same event id for another customer is a different event.
    applied(
        &app.event(
            &key,
            json!({"integrationId": "c2", "achievementId": id, "delta": 3, "eventId": "e1"}),
        )
        .await,
    );
    assert_eq!(app.progress(&key, "c", id).await, Some(json!(3)));
    assert_eq!(app.progress(&key, "c2", id).await, Some(json!(3)));
    // In a batch too.
    let b = app
        .batch(&key, "", json!({"events": [body.clone(), body]}))
        .await;
    assert_eq!(b.status, 200, "{}", b.text);
    let b = b.json();
    assert_eq!(b["applied"], 0, "{b}");
    assert_eq!(b["duplicates"], 2, "{b}");
    assert_eq!(b["results"][0]["effects"], original["effects"]);
    assert_eq!(app.progress(&key, "c", id).await, Some(json!(3)));
}

#[actix_web::test]
async fn rejected_events_are_not_remembered_as_seen() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "retry", "period": "1D", "target": 10}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    let early = app
        .event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 1, "eventId": "e",
                   "timestamp": rfc(now_s() + Duration::minutes(10))}),
        )
        .await;
    assert_rejected(&early, "future_timestamp");
    // The same event id, now with a good timestamp, applies.
    applied(
        &app.event(
            &key,
            json!({"integrationId": "c", "achievementId": id, "delta": 1, "eventId": "e"}),
        )
        .await,
    );
    // A rollback of it works, and an unknown rollback leaves no trace either.
    applied(
        &app.rollback(
            &key,
            json!({"integrationId": "c", "achievementId": id, "eventId": "e"}),
        )
        .await,
    );
    assert_eq!(app.progress(&key, "c", id).await, Some(json!(0)));
}

#[actix_web::test]
async fn concurrent_events_and_retries_are_counted_exactly_once() {
    let seed = seeded("UTC").await;
    let id = seed
        .achievement_id(json!({"name": "busy", "period": "1D", "target": 1_000_000,
                               "recurrencePolicy": "on_expiration"}))
        .await;
    let (app, key) = (&seed.app, seed.key.clone());
    const TASKS: usize = 8;
    const PER_TASK: usize = 100;
    const CUSTOMERS: usize = 5;
    let event_of = |task: usize, j: usize| -> (String, String) {
        (
            format!("cust{}", (task + j) % CUSTOMERS),
            format!("t{task}-e{j}"),
        )
    };
    let (app_ref, key_ref) = (app, &key);
    let tasks = (0..TASKS).map(|task| async move {
        let mut answers = Vec::new();
        // Own events, interleaved with retries of the next task's events
        // (20 % of them), which that task sends concurrently.
        for j in 0..PER_TASK {
            let mut sends = vec![event_of(task, j)];
            if j % 5 == 0 {
                sends.push(event_of((task + 1) % TASKS, j));
            }
            for (customer, event_id) in sends {
                let a = app_ref
                    .event(
                        key_ref,
                        json!({"integrationId": customer, "achievementId": id,
                               "delta": 1, "eventId": event_id}),
                    )
                    .await;
                assert_eq!(a.status, 200, "{}", a.text);
                let v = a.json();
                answers.push((
                    customer,
                    event_id,
                    v["outcome"].as_str().unwrap().to_string(),
                ));
            }
        }
        answers
    });
    let answers: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(answers.len(), TASKS * PER_TASK * 6 / 5);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut applied_ids = HashSet::new();
    let mut per_customer: HashMap<String, usize> = HashMap::new();
    for (customer, event_id, outcome) in &answers {
        *counts.entry(outcome.as_str()).or_default() += 1;
        if outcome == "applied" {
            assert!(
                applied_ids.insert(event_id.clone()),
                "{event_id} applied twice"
            );
            *per_customer.entry(customer.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        counts.get("applied").copied(),
        Some(TASKS * PER_TASK),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("duplicate").copied(),
        Some(TASKS * PER_TASK / 5),
        "{counts:?}"
    );
    assert_eq!(counts.get("rejected"), None, "{counts:?}");
    let distinct: HashSet<_> = answers.iter().map(|(_, e, _)| e.clone()).collect();
    assert_eq!(applied_ids, distinct);
    for c in 0..CUSTOMERS {
        let customer = format!("cust{c}");
        let expected = per_customer.get(&customer).copied().unwrap_or(0);
        assert_eq!(expected, TASKS * PER_TASK / CUSTOMERS);
        assert_eq!(
            app.progress(&key, &customer, id).await,
            Some(json!(expected)),
            "{customer}"
        );
        let h = app.history(&key, &customer, id, "").await;
        assert_eq!(h["totalResultSize"], 1, "one iteration for {customer}: {h}");
    }
}
