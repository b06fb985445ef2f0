//! `GET /v1/period_preview` (management): the `startDate` and `endDate` an
//! iteration opened at `start` would have for a period string, in a time
//! zone. The web console calls it while a period is typed.
//!
//! Owns: decoding the query (unknown parameters refused) and rendering the
//! answer. The calendar arithmetic is the domain's (`Period::end_from`);
//! "now" comes from the engine's clock.

use super::routes::Routes;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::auth::Management;
use super::error::ApiError;
use super::json::{parse_time, Time};
use super::AppState;
use crate::domain::period::Period;

pub fn configure(r: &mut Routes) {
    r.get("/v1/period_preview", period_preview);
}

/// The query, as sent; every value is checked by the handler so that each
/// error names its parameter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewQuery {
    period: Option<String>,
    start: Option<String>,
    timezone: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PeriodPreview)]
struct Preview {
    start_date: Time,
    end_date: Time,
}

/// Decodes the query string; an unknown or repeated parameter is a 400
/// naming it.
fn decode(query: &str) -> Result<PreviewQuery, ApiError> {
    serde_urlencoded::from_str(query).map_err(|e| {
        let text = e.to_string();
        let name = ["unknown field `", "duplicate field `"]
            .iter()
            .find_map(|p| text.strip_prefix(p))
            .and_then(|rest| rest.split('`').next())
            .unwrap_or("");
        let message = if text.starts_with("unknown field") {
            format!("unknown parameter '{name}': use period, start and timezone")
        } else {
            format!("malformed query string: {text}")
        };
        ApiError::parameter(name, message)
    })
}

#[utoipa::path(get, path = "/v1/period_preview", tag = "management", security(("ManagementKey" = [])), params(("period" = String, Query, description = "A period, such as 1D, 1W or 3M_U"), ("start" = Option<String>, Query, format = DateTime, description = "When the iteration would open (default now)"), ("timezone" = Option<String>, Query, description = "An IANA time zone (default UTC)")), responses((status = 200, description = "The iteration's start and end, in UTC", body = Preview)))]
async fn period_preview(
    _: Management,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = decode(req.query_string())?;
    let period: Period = q
        .period
        .as_deref()
        .ok_or_else(|| ApiError::parameter("period", "period is required, such as 1D or 3M_U"))?
        .parse()
        .map_err(|e: crate::domain::period::PeriodError| {
            ApiError::parameter("period", e.to_string())
        })?;
    let tz: Tz = match q.timezone.as_deref() {
        None => Tz::UTC,
        Some(name) => name.parse().map_err(|_| {
            ApiError::parameter(
                "timezone",
                format!("'{name}' is not an IANA time zone name (such as Europe/Berlin)"),
            )
        })?,
    };
    let start = match q.start.as_deref() {
        None => state.engine.now(),
        Some(text) => parse_time(text).map_err(|m| ApiError::parameter("start", m))?,
    };
    let end = period.end_from(start, tz).ok_or_else(|| {
        ApiError::parameter("start", "the period's end is outside the supported dates")
    })?;
    Ok(HttpResponse::Ok().json(Preview {
        start_date: Time(start),
        end_date: Time(end.reported),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::Source;

    #[test]
    fn unknown_and_repeated_parameters_name_themselves() {
        for (query, parameter) in [
            ("period=1D&foo=1", "foo"),
            ("period=1D&period=2D", "period"),
        ] {
            let e = decode(query).err().expect("refused");
            assert_eq!(e.status.as_u16(), 400, "{query}");
            assert_eq!(
                e.errors[0].source,
                Some(Source::Parameter(parameter.into())),
                "{query}: {}",
                e.message
            );
        }
        let q = decode("period=1D&timezone=Europe%2FBerlin").expect("decodes");
        assert_eq!(q.timezone.as_deref(), Some("Europe/Berlin"));
    }
}
