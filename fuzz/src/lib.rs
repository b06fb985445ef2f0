//! What each fuzz target does with one input, shared with the regression
//! tests (`tests/api/fuzz_regressions.rs` includes this file as a module and
//! replays the stored inputs of `tests/fixtures/fuzz/<target>/` through the
//! same functions).
//!
//! Every function must return normally for any input: a panic (including a
//! failed assertion of an invariant below) is a finding.

use std::io::Write as _;
use std::str::FromStr as _;

use achievements_engine::domain::achievement::{
    AchievementDraft, ActivationPolicy, RecurrencePolicy,
};
use achievements_engine::domain::period::Period;
use achievements_engine::http::integration;
use achievements_engine::http::json::{self, Num, Seconds, Time};
use achievements_engine::persist::{codec, model, snapshot, wal};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

/// A cheap, stable hash of the input: picks zones, anchors and offsets so
/// that a stored input always replays the same way.
fn mix(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

const ZONES: [Tz; 6] = [
    chrono_tz::UTC,
    chrono_tz::Europe::Berlin,
    chrono_tz::America::Sao_Paulo,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Pacific::Chatham,
    chrono_tz::Pacific::Apia,
];

fn instant(text: &str) -> DateTime<Utc> {
    json::parse_time(text).unwrap_or_default()
}

fn anchors() -> [DateTime<Utc>; 7] {
    [
        instant("2024-03-31T00:30:00Z"),
        instant("2024-10-27T00:59:59.999999999Z"),
        instant("2020-02-29T12:00:00Z"),
        instant("2011-12-29T10:00:00Z"),
        instant("1970-01-01T00:00:00Z"),
        instant("0001-01-01T00:00:00Z"),
        instant("9999-12-31T23:59:59Z"),
    ]
}

fn offsets() -> [Duration; 8] {
    [
        Duration::zero(),
        Duration::nanoseconds(1),
        Duration::seconds(1),
        Duration::hours(23),
        Duration::days(36),
        Duration::days(3 * 365 + 17),
        Duration::days(400 * 366),
        Duration::days(1_500 * 366),
    ]
}

/// `period`: the parser must refuse or accept without panicking; an accepted
/// period renders to text that parses back to it, its end lies after its
/// start, and the fixed window found for an instant contains it.
pub fn period(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = Period::from_str(text) else {
        return;
    };
    let shown = p.to_string();
    let again = Period::from_str(&shown)
        .unwrap_or_else(|e| panic!("{text:?} renders as {shown:?}, which fails: {e}"));
    assert_eq!(again, p, "{text:?} renders as {shown:?}");
    let h = mix(data);
    let tz = ZONES[(h % ZONES.len() as u64) as usize];
    let anchor = anchors()[((h >> 8) % 7) as usize];
    if let Some(end) = p.end_from(anchor, tz) {
        assert!(
            end.end > anchor,
            "{text:?} from {anchor} in {tz} ends at {end:?}"
        );
        assert!(end.reported <= end.end, "{text:?}: {end:?}");
    }
    for shift in [16, 24, 32] {
        let offset = offsets()[((h >> shift) % 8) as usize];
        let Some(t) = anchor.checked_add_signed(offset) else {
            continue;
        };
        if let Some(w) = p.window_containing(anchor, tz, t) {
            assert!(
                w.start <= t && t < w.end.end,
                "{text:?} anchored at {anchor} in {tz}: window {w:?} does not contain {t}"
            );
        }
    }
}

/// The shape of a progress event (`POST /v1/progress_events`), mirrored from
/// the private request type in `http::integration`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProgressEvent {
    pub integration_id: String,
    #[serde(default)]
    pub achievement_id: Option<u64>,
    #[serde(default)]
    pub achievement_name: Option<String>,
    pub delta: Num,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub timestamp: Option<Time>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub events: Vec<ProgressEvent>,
}

/// The shape of CreateAchievement, mirrored from `http::management`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateAchievement {
    pub name: String,
    pub title: String,
    pub description: String,
    pub target: Num,
    #[serde(default)]
    pub period: Option<String>,
    #[serde(default)]
    pub recurrence_policy: Option<String>,
    #[serde(default)]
    pub activation_policy: Option<String>,
    #[serde(default)]
    pub fixed_start_date: Option<Time>,
    #[serde(default)]
    pub end_date: Option<Time>,
    #[serde(default)]
    pub allow_rollback_after_completion: Option<bool>,
    #[serde(default)]
    pub end_progress_on_target: Option<bool>,
    #[serde(default)]
    pub allowed_lateness_seconds: Option<Seconds>,
}

/// Exact numbers and instants survive a trip through their JSON rendering.
fn round_trip(num: Num, time: Option<Time>) {
    let text = serde_json::to_string(&num).expect("a Num renders");
    let back: Num = json::decode(text.as_bytes())
        .unwrap_or_else(|e| panic!("{num:?} renders as {text}, which fails: {e:?}"));
    assert_eq!(back.0, num.0, "{num:?} renders as {text}");
    if let Some(t) = time {
        let shown = json::fmt_time(t.0);
        assert_eq!(
            json::parse_time(&shown),
            Ok(t.0),
            "{t:?} renders as {shown}"
        );
    }
}

/// `json_decode`: request decoding refuses or accepts any bytes without
/// panicking: the handlers' own decoders of a progress event and a batch
/// (`http::integration::decode_event` / `decode_batch`), and
/// `http::json::decode` as a generic JSON value and into the mirrored shapes
/// above, whose accepted values are then validated as the handlers do.
pub fn json_decode(data: &[u8]) {
    let _ = integration::decode_event(data);
    let _ = integration::decode_batch(data);
    if let Ok(value) = json::decode::<serde_json::Value>(data) {
        let text = value.to_string();
        let again: serde_json::Value = json::decode(text.as_bytes())
            .unwrap_or_else(|e| panic!("{text} was decoded, then refused: {e:?}"));
        assert_eq!(again, value);
    }
    if let Ok(ev) = json::decode::<ProgressEvent>(data) {
        round_trip(ev.delta, ev.timestamp);
        let _ = achievements_engine::domain::achievement::check_amount("/delta", ev.delta.0);
        let _ = achievements_engine::domain::CustomerId::parse(&ev.integration_id, "/i");
        if let Some(id) = ev.event_id.as_deref() {
            let _ = achievements_engine::domain::EventId::parse(id, "/eventId");
        }
    }
    if let Ok(batch) = json::decode::<Batch>(data) {
        for ev in batch.events {
            round_trip(ev.delta, ev.timestamp);
        }
    }
    if let Ok(b) = json::decode::<CreateAchievement>(data) {
        round_trip(b.target, b.fixed_start_date.or(b.end_date));
        let recurrence = match b.recurrence_policy.as_deref().map(RecurrencePolicy::parse) {
            None => RecurrencePolicy::default(),
            Some(Some(r)) => r,
            Some(None) => return,
        };
        let activation = match b.activation_policy.as_deref().map(ActivationPolicy::parse) {
            None => ActivationPolicy::default(),
            Some(Some(a)) => a,
            Some(None) => return,
        };
        let draft = AchievementDraft {
            name: b.name,
            title: b.title,
            description: b.description,
            target: b.target.0,
            period: b.period,
            recurrence_policy: recurrence,
            activation_policy: activation,
            fixed_start_date: b.fixed_start_date.map(|t| t.0),
            end_date: b.end_date.map(|t| t.0),
            allow_rollback_after_completion: b.allow_rollback_after_completion.unwrap_or(false),
            end_progress_on_target: b.end_progress_on_target.unwrap_or(false),
            allowed_lateness_secs: b.allowed_lateness_seconds.map(|s| s.0),
        };
        if let Ok(rules) = draft.validate() {
            let tz = ZONES[(mix(data) % ZONES.len() as u64) as usize];
            let start = rules.fixed_start_date.unwrap_or_default();
            for t in [start, start + Duration::days(45)] {
                let _ = rules.definition_status(tz, t);
                if rules.accepts_progress_at(tz, t) {
                    let _ = rules.open_bounds(tz, t);
                }
            }
        }
    }
}

fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(bytes).expect("temporary file written");
    file.flush().expect("temporary file flushed");
    file
}

/// The snapshot file an input stands for. First byte 0 (or an empty input):
/// the rest is the whole file. Otherwise the rest is a body behind a valid
/// prefix and header whose length and checksums match it, so the decoder
/// gets past the checks into the sections; the first byte picks the number
/// of shards (low 3 bits) and the pair count the header claims (the rest).
pub fn snapshot_file(data: &[u8]) -> Vec<u8> {
    let Some((&mode, body)) = data.split_first() else {
        return Vec::new();
    };
    if mode == 0 {
        return body.to_vec();
    }
    // The high bit picks the format: 3 (by partition) or 1 (by shard).
    let (version, header) = if mode & 0x80 != 0 {
        let header = snapshot::HeaderV3 {
            created_secs: 1_700_000_000,
            created_nanos: 0,
            catalog_position: 1,
            positions: vec![1; usize::from(mode & 7)],
            pair_numbers: 0,
            pairs: u64::from((mode >> 3) & 0x0f),
            body_len: body.len() as u64,
            body_crc: codec::crc32(body),
        };
        (snapshot::VERSION_3, codec::encode_fixed(&header))
    } else {
        let header = snapshot::HeaderV1 {
            created_secs: 1_700_000_000,
            created_nanos: 0,
            catalog_lsn: 1,
            shard_lsns: vec![1; usize::from(mode & 7)],
            pair_numbers: 0,
            pairs: u64::from(mode >> 3),
            body_len: body.len() as u64,
            body_crc: codec::crc32(body),
        };
        (snapshot::VERSION_1, codec::encode_fixed(&header))
    };
    let header = header.expect("a header encodes");
    let mut out = snapshot::MAGIC.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&codec::crc32(&header).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// `snapshot_read`: `persist::snapshot::read` (and `read_header`) on a file
/// holding [`snapshot_file`] of the input return, with an error or not, and
/// never panic.
pub fn snapshot_read(data: &[u8]) {
    let file = temp_file(&snapshot_file(data));
    let _ = snapshot::read_header(file.path());
    let mut pairs = 0usize;
    let _ = snapshot::read(file.path(), |_, chunk| {
        pairs += chunk.len();
        Ok(())
    });
}

/// The segment an input stands for. First byte 0 (or an empty input): the
/// rest is the whole file. Otherwise the rest is cut into frames with valid
/// checksums — each `len u8 | payload` becomes a frame with the next LSN —
/// and what is left over (a cut-short payload) is appended raw.
pub fn wal_segment(data: &[u8]) -> Vec<u8> {
    let Some((&mode, mut rest)) = data.split_first() else {
        return Vec::new();
    };
    if mode == 0 {
        return rest.to_vec();
    }
    let mut out = Vec::new();
    let mut lsn = u64::from(mode);
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if tail.len() < len {
            break;
        }
        wal::frame(&mut out, lsn, &tail[..len]);
        lsn = lsn.wrapping_add(1);
        rest = &tail[len..];
    }
    out.extend_from_slice(rest);
    out
}

/// `wal_read`: `persist::wal::read_segment` on a file holding
/// [`wal_segment`] of the input returns the valid prefix: no more than the
/// file, and exactly the frames that re-encode to it.
pub fn wal_read(data: &[u8]) {
    let bytes = wal_segment(data);
    let file = temp_file(&bytes);
    let (records, valid) = wal::read_segment(file.path()).expect("the segment can be read");
    let valid = usize::try_from(valid).expect("valid prefix fits");
    assert!(
        valid <= bytes.len(),
        "valid prefix {valid} > {}",
        bytes.len()
    );
    let mut again = Vec::new();
    for (lsn, payload) in &records {
        wal::frame(&mut again, *lsn, payload);
        // Whatever a payload holds, reading it as a record of either log
        // (any version) is an answer, never a panic.
        let _ = model::decode_shard_record(payload);
        let _ = model::decode_catalog_record(payload);
    }
    assert_eq!(
        again,
        bytes[..valid],
        "records do not re-encode to the prefix"
    );
}
