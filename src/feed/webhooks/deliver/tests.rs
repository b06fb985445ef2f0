//! Delivery on its own: TLS targets, refused addresses, the counters.

use std::io::Read;

use super::*;

fn config(allow_private: bool) -> DeliveryConfig {
    DeliveryConfig {
        timeout: Duration::from_secs(2),
        ..DeliveryConfig::new(1, allow_private)
    }
}

#[actix_rt::test]
async fn https_targets_are_reached_over_tls() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, first_byte) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        let _ = tx.send(byte[0]);
    });
    let client = client(&config(true), tls_config().unwrap());
    let sent = client
        .post(format!("https://127.0.0.1:{port}/"))
        .send_body("{}")
        .await;
    let e = sent.expect_err("no TLS server there");
    assert!(!e.to_string().contains("SSL is not supported"), "{e}");
    // 0x16: a TLS handshake record (the ClientHello).
    let byte = first_byte.recv_timeout(Duration::from_secs(5));
    assert_eq!(byte, Ok(0x16), "{e}");
}

#[actix_rt::test]
async fn names_resolving_to_refused_addresses_are_not_contacted() {
    let client = client(&config(false), tls_config().unwrap());
    for url in [
        "http://localhost:9/",
        "https://localhost:9/",
        "http://[::1]:9/",
    ] {
        let e = client.post(url).send_body("{}").await.unwrap_err();
        let text = describe(e);
        assert!(text.starts_with("address refused"), "{url}: {text}");
    }
}

#[test]
fn stats_report_the_oldest_undelivered_entry() {
    let stats = WebhookStats::default();
    let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    assert_eq!(stats.oldest_undelivered_secs(now), 0.0);
    stats.delivering(WebhookId(1), now - chrono::Duration::seconds(5));
    stats.delivering(WebhookId(2), now - chrono::Duration::milliseconds(90_500));
    assert_eq!(stats.oldest_undelivered_secs(now), 90.5);
    {
        let _guard = PendingGuard(&stats, WebhookId(2));
        let _waiting = RetryingGuard::new(&stats);
        assert_eq!(stats.retrying(), 1);
    }
    assert_eq!(stats.retrying(), 0);
    assert_eq!(stats.oldest_undelivered_secs(now), 5.0);
    stats.count(DeliveryStatus::GaveUp);
    assert_eq!(stats.deliveries(DeliveryStatus::GaveUp), 1);
    assert_eq!(stats.deliveries(DeliveryStatus::Delivered), 0);
}
