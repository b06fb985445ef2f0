//! Strict request decoding and exact JSON values.
//!
//! Owns: the header size limit (431), reading a body with a size limit
//! (413), decoding it with unknown fields refused and every error tied to a
//! JSON pointer, exact decimals in both directions (`Num`: JSON numbers parsed as text, never through `f64`),
//! RFC 3339 instants (`Time`), and query-string parameters.

use std::fmt;
use std::str::FromStr;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{ApiError, Source};

/// Body limit for ordinary requests.
pub const BODY_LIMIT: usize = 256 * 1024;
/// Body limit for batches (10 000 events).
pub const BATCH_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Limit on a request's headers (names and values, summed). actix-http
/// itself reads a head of up to 128 KiB and answers 431 beyond it; no
/// legitimate client needs more than this.
pub const HEADER_LIMIT: usize = 16 * 1024;

/// Middleware: 431 for requests whose headers exceed [`HEADER_LIMIT`].
pub async fn header_limit(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let size: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > HEADER_LIMIT {
        let error = ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("request headers are larger than {HEADER_LIMIT} bytes"),
            None,
        );
        // A response rather than an `Err`, so the middleware outside adds
        // the request id to it like to any other answer.
        return Ok(req.error_response(error).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Reads a body of at most `limit` bytes.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
            None,
        )
    };
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => too_large(),
            other => ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {other}"),
                None,
            ),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads and decodes a JSON body.
pub async fn parse_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    if let Some(ct) = req.headers().get(actix_web::http::header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !ct.is_empty() && !ct.starts_with("application/json") && !ct.contains("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the request body must be JSON (Content-Type: application/json)",
                Some(Source::Parameter("Content-Type".into())),
            ));
        }
    }
    let bytes = read_body(payload, limit).await?;
    decode(&bytes)
}

/// Decodes JSON; every error names where it is.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::pointer(
            "",
            "the request body must be a JSON document",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut pointer = String::new();
        for segment in e.path().iter() {
            use serde_path_to_error::Segment;
            match segment {
                Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
                Segment::Map { key } => pointer.push_str(&format!("/{}", escape(key))),
                Segment::Enum { variant } => pointer.push_str(&format!("/{}", escape(variant))),
                Segment::Unknown => {}
            }
        }
        let inner = e.into_inner();
        let text = inner.to_string();
        for prefix in ["unknown field `", "missing field `"] {
            if let Some(rest) = text.strip_prefix(prefix) {
                if let Some(name) = rest.split('`').next() {
                    if !pointer.ends_with(&format!("/{}", escape(name))) {
                        pointer.push_str(&format!("/{}", escape(name)));
                    }
                }
            }
        }
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {text}")
        } else {
            strip_position(&text)
        };
        ApiError::pointer(pointer, message)
    })?;
    de.end()
        .map_err(|e| ApiError::pointer("", format!("malformed JSON: {e}")))?;
    Ok(value)
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// serde_json appends " at line 1 column 5"; the pointer says it better.
fn strip_position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    }
}

/// An exact decimal that is a JSON number on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Num(pub Decimal);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(d)?;
        let text = number.to_string();
        let parsed = if text.contains(['e', 'E']) {
            Decimal::from_scientific(&text)
        } else {
            Decimal::from_str_exact(&text)
        };
        parsed
            .map(Num)
            .map_err(|_| D::Error::custom(format!("number {text} cannot be represented exactly")))
    }
}

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.0.normalize().to_string();
        match serde_json::Number::from_str(&text) {
            Ok(n) => n.serialize(s),
            Err(_) => s.serialize_str(&text),
        }
    }
}

/// A whole number of seconds, 0 or more (`allowedLatenessSeconds`): a JSON
/// integer, never a fraction or a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub u64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of seconds, 0 or more")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Seconds, E> {
                u64::try_from(v).map(Seconds).map_err(|_| {
                    E::custom(format!(
                        "{v} is negative; expected a whole number of seconds, 0 or more"
                    ))
                })
            }
        }
        d.deserialize_u64(Visitor)
    }
}

/// An RFC 3339 instant; rendered in UTC with a `Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_time(&text).map(Time).map_err(D::Error::custom)
    }
}

/// Parses an RFC 3339 instant.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("'{text}' is not an RFC 3339 date-time ({e})"))
}

/// Formats an instant as RFC 3339 in UTC.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&fmt_time(self.0))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_time(self.0))
    }
}

/// A field that distinguishes "absent" from "null": `None` when absent,
/// `Some(None)` for null. Use with `#[serde(default)]`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Query-string parameters.
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn from_request(req: &HttpRequest) -> Result<Query, ApiError> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
            .map(|pairs| Query { pairs })
            .map_err(|e| ApiError::parameter("", format!("malformed query string: {e}")))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A whole number in `min..=max`, or `default` when absent.
    pub fn number(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::parameter(
                        name,
                        format!("{name} must be a whole number from {min} to {max}"),
                    )
                }),
        }
    }

    /// `pageSize` and `skip`.
    pub fn page(&self, default_size: u64, max_size: u64) -> Result<Page, ApiError> {
        Ok(Page {
            size: self.number("pageSize", default_size, 1, max_size)? as usize,
            skip: self.number("skip", 0, 0, u64::from(u32::MAX))? as usize,
        })
    }

    /// A time parameter.
    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.get(name)
            .map(|v| parse_time(v).map_err(|m| ApiError::parameter(name, m)))
            .transpose()
    }

    /// A comma-separated list of whole numbers; an empty value is no filter.
    pub fn id_list(&self, name: &str) -> Result<Option<Vec<u64>>, ApiError> {
        self.get(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| {
                        s.trim().parse::<u64>().map_err(|_| {
                            ApiError::parameter(
                                name,
                                format!("{name} must be a comma-separated list of ids"),
                            )
                        })
                    })
                    .collect()
            })
            .transpose()
    }
}

/// A page of a list.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub size: usize,
    pub skip: usize,
}

impl Page {
    /// Cuts a page from `items`; returns it and whether more follow.
    pub fn cut<T>(&self, items: Vec<T>) -> (Vec<T>, bool) {
        let total = items.len();
        let page: Vec<T> = items.into_iter().skip(self.skip).take(self.size).collect();
        let has_more = self.skip.saturating_add(page.len()) < total;
        (page, has_more)
    }
}

/// A path segment, fully percent-decoded (the router leaves `%2F`, `%2B`
/// and `%25` encoded).
pub fn path_text(req: &HttpRequest, name: &str) -> Result<String, ApiError> {
    let raw = req.match_info().get(name).unwrap_or("");
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::parameter(name, format!("{name} must be valid UTF-8")))
}

/// A path id: a whole number, else 400 naming the parameter.
pub fn path_id(raw: &str, name: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .map_err(|_| ApiError::parameter(name, format!("{name} must be a whole number")))
}

// How the wire types above appear in the OpenAPI document.

impl utoipa::PartialSchema for Num {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Number)
            .description(Some("An exact decimal, written as a JSON number"))
            .into()
    }
}
impl utoipa::ToSchema for Num {}

impl utoipa::PartialSchema for Seconds {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .minimum(Some(0))
            .into()
    }
}
impl utoipa::ToSchema for Seconds {}

impl utoipa::PartialSchema for Time {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, SchemaFormat};
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .into()
    }
}
impl utoipa::ToSchema for Time {}
