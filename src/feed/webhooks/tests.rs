//! The registry and its files: ids, persistence, malformed files.
use super::*;

fn feed(dir: &Path) -> Arc<Feed> {
    Feed::open(
        &dir.join("feed"),
        chrono::Duration::days(7),
        Clock::system(),
    )
    .unwrap()
}

fn open(dir: &Path, feed: &Arc<Feed>) -> Result<Webhooks, WebhookError> {
    Webhooks::open(
        &dir.join(WEBHOOKS_DIR),
        feed.clone(),
        Clock::system(),
        DeliveryConfig::new(24, false),
    )
}

fn new(url: &str, types: &[&str], secret: Option<&str>) -> NewWebhook {
    let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    NewWebhook::parse(url, Some(&types), secret).unwrap()
}

#[test]
fn webhooks_and_positions_survive_a_reopen_and_ids_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let feed = feed(dir.path());
    let hooks = open(dir.path(), &feed).unwrap();
    let app = ApplicationId(7);
    let a = hooks
        .create(app, new("https://example.com/a", &[], None))
        .unwrap();
    let b = hooks
        .create(
            app,
            new(
                "http://example.com:8080/b?x=1",
                &["achievement.completed"],
                Some("s3cret"),
            ),
        )
        .unwrap();
    let c = hooks
        .create(ApplicationId(8), new("https://example.org/", &[], None))
        .unwrap();
    assert_eq!(
        (a.id, b.id, c.id),
        (WebhookId(1), WebhookId(2), WebhookId(3))
    );
    assert_eq!(a.types, EntryType::ALL.to_vec());
    assert_eq!(b.types, vec![EntryType::Completed]);
    assert!(a.secret.expose().starts_with(sign::SECRET_PREFIX));
    hooks.shared.set_position(a.id, 41);
    hooks.shared.set_position(b.id, 12);
    hooks.shared.save_positions().unwrap();
    assert!(
        hooks.delete(app, c.id).is_ok_and(|d| !d),
        "c is another application's"
    );
    assert!(hooks.delete(ApplicationId(8), c.id).unwrap());
    assert!(hooks.shared.disable(b.id).is_ok());
    drop(hooks);

    let again = open(dir.path(), &feed).unwrap();
    let listed = again.list(app);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], a);
    assert_eq!(
        listed[1],
        Webhook {
            disabled: true,
            ..b.clone()
        }
    );
    assert_eq!(again.list(ApplicationId(8)), vec![]);
    assert_eq!(again.position(a.id), Some(41));
    assert_eq!(again.position(b.id), Some(12));
    assert_eq!(again.shared.active_ids(), vec![a.id]);
    let d = again
        .create(app, new("https://example.com/d", &[], None))
        .unwrap();
    assert_eq!(d.id, WebhookId(4), "ids are never reused");
    assert_eq!(again.position(d.id), Some(feed.head()));
}

#[cfg(unix)]
#[test]
fn the_list_holds_secrets_and_only_its_owner_may_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let hooks = open(dir.path(), &feed(dir.path())).unwrap();
    hooks
        .create(
            ApplicationId(1),
            new("https://example.com/", &[], Some("topsecret")),
        )
        .unwrap();
    let path = dir.path().join(WEBHOOKS_DIR).join(HOOKS_FILE);
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(fs::read_to_string(&path).unwrap().contains("topsecret"));
    let dir_mode = fs::metadata(dir.path().join(WEBHOOKS_DIR))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
}

#[test]
fn malformed_files_are_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let feed = feed(dir.path());
    let hooks_dir = dir.path().join(WEBHOOKS_DIR);
    fs::create_dir_all(&hooks_dir).unwrap();
    let valid_hook = r#"{"id":1,"application":1,"url":"https://example.com/","types":["achievement.started"],"secret":"x","created":"2024-01-01T00:00:00Z","disabled":false,"start":0}"#;
    let cases: [(&str, String); 8] = [
        (HOOKS_FILE, "{not json".into()),
        (
            HOOKS_FILE,
            r#"{"version":2,"nextId":1,"webhooks":[]}"#.into(),
        ),
        (
            HOOKS_FILE,
            r#"{"version":1,"nextId":1,"webhooks":[],"extra":1}"#.into(),
        ),
        (
            HOOKS_FILE,
            format!(r#"{{"version":1,"nextId":1,"webhooks":[{valid_hook}]}}"#),
        ),
        (
            HOOKS_FILE,
            format!(r#"{{"version":1,"nextId":5,"webhooks":[{valid_hook},{valid_hook}]}}"#),
        ),
        (
            HOOKS_FILE,
            format!(
                r#"{{"version":1,"nextId":5,"webhooks":[{}]}}"#,
                valid_hook.replace("https://example.com/", "ftp://x/")
            ),
        ),
        (POSITIONS_FILE, "[]".into()),
        (
            POSITIONS_FILE,
            r#"{"version":1,"positions":{"a":1}}"#.into(),
        ),
    ];
    for (name, text) in cases {
        let _ = fs::remove_file(hooks_dir.join(HOOKS_FILE));
        let _ = fs::remove_file(hooks_dir.join(POSITIONS_FILE));
        fs::write(hooks_dir.join(name), &text).unwrap();
        match open(dir.path(), &feed) {
            Err(e @ WebhookError::Malformed { .. }) => {
                assert!(e.to_string().contains(name), "{e}");
            }
            Err(e) => panic!("{text}: {e}"),
            Ok(_) => panic!("{text} was accepted"),
        }
    }
    // And a good file reads.
    fs::remove_file(hooks_dir.join(POSITIONS_FILE)).unwrap();
    fs::write(
        hooks_dir.join(HOOKS_FILE),
        format!(r#"{{"version":1,"nextId":2,"webhooks":[{valid_hook}]}}"#),
    )
    .unwrap();
    let hooks = open(dir.path(), &feed).unwrap();
    assert_eq!(hooks.list(ApplicationId(1)).len(), 1);
    assert_eq!(hooks.position(WebhookId(1)), Some(0));
}

#[test]
fn requests_are_validated_field_by_field() {
    let pointers = |url: &str, types: Option<&[&str]>, secret: Option<&str>| {
        let types: Option<Vec<String>> = types.map(|t| t.iter().map(|s| s.to_string()).collect());
        NewWebhook::parse(url, types.as_deref(), secret)
            .map(|_| Vec::new())
            .unwrap_or_else(|errors| errors.into_iter().map(|e| e.pointer).collect())
    };
    let none: Vec<String> = Vec::new();
    assert_eq!(pointers("https://example.com/x?y=1", None, None), none);
    assert_eq!(
        pointers("http://[2606:4700::1]:81/", Some(&[]), Some("k")),
        none
    );
    for bad in [
        "not a url",
        "/relative",
        "ftp://example.com/",
        "mailto:a@example.com",
        "https://user:pw@example.com/",
        "https://user@example.com/",
        "https://example.com/#frag",
        "file:///etc/passwd",
    ] {
        assert_eq!(pointers(bad, None, None), vec!["/url"], "{bad}");
    }
    let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
    assert_eq!(pointers(&long, None, None), vec!["/url"]);
    assert_eq!(
        pointers(
            "https://example.com/",
            Some(&["achievement.started", "achievement.nope"]),
            None
        ),
        vec!["/types/1"]
    );
    assert_eq!(
        pointers("ftp://x/", Some(&["x"]), Some("whsec_???")),
        vec!["/url", "/types/0", "/secret"]
    );
    let types: Vec<String> = [
        "achievement.expired",
        "achievement.started",
        "achievement.expired",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let parsed = NewWebhook::parse("https://example.com/", Some(&types), None).unwrap();
    assert_eq!(parsed.types, vec![EntryType::Started, EntryType::Expired]);
}

/// A cluster's shared store, in memory.
#[derive(Default)]
struct MemoryStore(Mutex<HashMap<String, (Vec<u8>, u64)>>);

impl SharedStore for MemoryStore {
    fn load(&self, name: &str) -> Result<Option<(Vec<u8>, u64)>, String> {
        Ok(lock(&self.0).get(name).cloned())
    }

    fn replace(&self, name: &str, bytes: &[u8], revision: u64) -> Result<Option<u64>, String> {
        let mut docs = lock(&self.0);
        let current = docs.get(name).map_or(0, |(_, r)| *r);
        if current != revision {
            return Ok(None);
        }
        docs.insert(name.to_string(), (bytes.to_vec(), current + 1));
        Ok(Some(current + 1))
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let mut docs = lock(&self.0);
        let next = docs.get(name).map_or(1, |(_, r)| r + 1);
        docs.insert(name.to_string(), (bytes.to_vec(), next));
        Ok(())
    }
}

/// A delivered attempt of entry `e<attempt>`.
fn delivered(attempt: u32) -> Delivery {
    Delivery {
        event_id: Some(format!("e{attempt}")),
        attempt,
        status: DeliveryStatus::Delivered,
        response_status: Some(204),
        error: None,
        at: Utc::now(),
    }
}

#[test]
fn a_node_that_starts_delivering_goes_on_from_the_attempts_the_last_one_shared() {
    let store: Arc<MemoryStore> = Arc::default();
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = open(one.path(), &feed(one.path())).unwrap();
    first.attach_store(store.clone()).unwrap();
    let app = ApplicationId(1);
    let hook = first
        .create(app, new("https://example.com/a", &[], None))
        .unwrap();
    // The second node joined before any delivery.
    let second = open(two.path(), &feed(two.path())).unwrap();
    second.attach_store(store.clone()).unwrap();
    // The first node delivered 40 times; what it shares goes to the store
    // beside the delivery loop, and an older list never lands last.
    first.shared.delivering.store(true, Ordering::Release);
    for attempt in 1..=40 {
        first.shared.record(hook.id, delivered(attempt));
    }
    let doc = shared::deliveries_doc(hook.id);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !store
        .load(&doc)
        .unwrap()
        .is_some_and(|(b, _)| String::from_utf8_lossy(&b).contains("\"e40\""))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the attempts were not shared"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (bytes, _) = store.load(&doc).unwrap().expect("shared");
    assert!(
        String::from_utf8_lossy(&bytes).contains("\"e40\""),
        "an older list of attempts replaced the newest"
    );
    // The second node takes over delivering: its list starts from them.
    second.shared.delivering.store(true, Ordering::Release);
    assert_eq!(second.deliveries(app, hook.id).map(|d| d.len()), Some(0));
    second.shared.reload_positions().unwrap();
    let listed = second.deliveries(app, hook.id).unwrap();
    let ids: Vec<Option<String>> = listed.iter().map(|d| d.event_id.clone()).collect();
    let expected: Vec<Option<String>> = (1..=40).rev().map(|i| Some(format!("e{i}"))).collect();
    assert_eq!(ids, expected);
}

/// A store whose write of a webhook's first list of attempts is slow, so
/// that without ordering it would land after the second.
#[derive(Default)]
struct SlowFirstList(MemoryStore);

impl SharedStore for SlowFirstList {
    fn load(&self, name: &str) -> Result<Option<(Vec<u8>, u64)>, String> {
        self.0.load(name)
    }

    fn replace(&self, name: &str, bytes: &[u8], revision: u64) -> Result<Option<u64>, String> {
        self.0.replace(name, bytes, revision)
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        if name.starts_with("deliveries.") && !String::from_utf8_lossy(bytes).contains("\"e2\"") {
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
        self.0.put(name, bytes)
    }
}

#[test]
fn an_older_list_of_attempts_never_replaces_a_newer_one_in_the_shared_store() {
    let store: Arc<SlowFirstList> = Arc::default();
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), &feed(dir.path())).unwrap();
    node.attach_store(store.clone()).unwrap();
    let app = ApplicationId(1);
    let hook = node
        .create(app, new("https://example.com/a", &[], None))
        .unwrap();
    node.shared.delivering.store(true, Ordering::Release);
    for attempt in 1..=2 {
        node.shared.record(hook.id, delivered(attempt));
    }
    // Both writes are over well before this.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let (bytes, _) = store
        .load(&shared::deliveries_doc(hook.id))
        .unwrap()
        .expect("the attempts were shared");
    assert!(
        String::from_utf8_lossy(&bytes).contains("\"e2\""),
        "the first list landed after the second: {}",
        String::from_utf8_lossy(&bytes)
    );
}
