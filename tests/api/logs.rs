//! The binary's log output: plain text without colour codes when it is not
//! a terminal, one JSON object per line with `--log-format json`, and a
//! request id per request, in the log line and the `x-request-id` header.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary with its output going to a file (not a terminal).
struct Binary(Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The bound address from the "listening" line, in either format.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("listening") {
        return None;
    }
    let rest = line
        .split_once("addr=")
        .or_else(|| line.split_once("\"addr\":\""))?
        .1;
    rest.split(|c: char| c.is_whitespace() || c == '"')
        .next()?
        .parse()
        .ok()
}

fn start(dir: &Path, log: &Path, format: &str) -> (Binary, SocketAddr) {
    let out = fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file handle");
    let child = Command::new(env!("CARGO_BIN_EXE_achievements-engine"))
        .args(["--listen", "127.0.0.1:0", "--workers", "1"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--management-key", "logs-test-key", "--log-format", format])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("start the binary");
    let binary = Binary(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = text.lines().find_map(listening_addr) {
            if exchange(addr, "GET /readyz", &[]).0 == 200 {
                return (binary, addr);
            }
        }
        assert!(Instant::now() < deadline, "not ready; log:\n{text}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One request: status and the response's head (lower-cased).
fn exchange(addr: SocketAddr, request_line: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("{request_line} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_lowercase();
    let status = head
        .strip_prefix("http/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::to_string)
}

/// Waits for a log line that contains `needle`.
fn wait_for_line(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {needle:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Requests with a good, a bad and no `x-request-id`: the good one is kept,
/// the others get a new 16-hex-digit id; each is in its response header.
fn request_ids(addr: SocketAddr) -> Vec<String> {
    let cases: [&[(&str, &str)]; 3] = [
        &[("x-request-id", "trace-7f3a.b_c:9")],
        &[("x-request-id", "bad id with spaces")],
        &[],
    ];
    let mut ids = Vec::new();
    for headers in cases {
        let (status, head) = exchange(addr, "GET /healthz", headers);
        assert_eq!(status, 200, "{head}");
        let id = header(&head, "x-request-id").expect("an x-request-id header");
        ids.push(id);
    }
    assert_eq!(ids[0], "trace-7f3a.b_c:9");
    for id in &ids[1..] {
        assert!(
            id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "a generated id: {id:?}"
        );
    }
    assert_ne!(ids[1], ids[2], "every request gets its own id");
    // Errors carry it too.
    let (status, head) = exchange(addr, "GET /v1/applications", &[("x-request-id", "e-1")]);
    assert_eq!(status, 401);
    assert_eq!(header(&head, "x-request-id").as_deref(), Some("e-1"));
    ids
}

#[test]
fn text_logs_have_no_colour_codes_off_a_terminal_and_name_each_request_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("server.log");
    let (binary, addr) = start(&dir.path().join("data"), &log, "text");
    for id in request_ids(addr) {
        let line = wait_for_line(&log, &format!("request_id={id}"));
        assert!(line.contains("status=200"), "{line}");
        assert!(line.contains("route=/healthz"), "{line}");
    }
    drop(binary);
    let text = fs::read_to_string(&log).expect("log");
    assert!(text.contains("listening"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a file:\n{text}");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_fields() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("server.log");
    let (binary, addr) = start(&dir.path().join("data"), &log, "json");
    let ids = request_ids(addr);
    wait_for_line(&log, &ids[2]);
    drop(binary);
    let text = fs::read_to_string(&log).expect("log");
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["fields"]["message"] == "listening" && l["level"] == "INFO"));
    for id in &ids {
        let line = lines
            .iter()
            .find(|l| l["span"]["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no line for {id}:\n{text}"));
        assert_eq!(line["target"], "http", "{line}");
        assert_eq!(line["fields"]["status"], 200, "{line}");
        assert_eq!(line["span"]["route"], "/healthz", "{line}");
        assert!(line["fields"]["micros"].is_u64(), "{line}");
    }
    let unauthorized = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "e-1")
        .expect("the 401's line");
    assert_eq!(unauthorized["fields"]["status"], 401);
}
