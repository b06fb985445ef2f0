//! Period strings (`1D`, `1.5h`, `3M_U`, `30D_D`) and the calendar arithmetic
//! behind them, in an IANA time zone.
//!
//! Owns: the grammar (`amount unit [rounding]`), adding a period to an instant,
//! the `_D`/`_U` rounding of period ends and fixed-schedule windows computed from
//! their anchor. Pure: never reads the clock, no I/O.
//!
//! Conventions (see SPEC §2):
//! - `s m h` are elapsed time; `D W` are local calendar days (wall-clock time is
//!   kept across DST); `M Y` are calendar months/years with end-of-month clamping.
//! - A fractional `D`/`W` amount is whole calendar days plus that fraction of
//!   the following local calendar day (`1.5D` = one calendar day and 12 h, or
//!   11.5 h / 12.5 h when that following day is 23 / 25 hours long). Scaling
//!   the fraction by the real length of the day keeps boundaries increasing, so
//!   fixed windows tile time even for tiny fractions across DST changes.
//! - An amount must be a whole number of nanoseconds (`0.0000000001s` is
//!   refused): otherwise a period could round to zero length.
//! - Local times inside a spring-forward gap move forward past the gap; ambiguous
//!   local times (fall-back) take the earlier instant.
//! - Every period is a half-open interval `[start, end)`. `_U` moves the end up
//!   to the first instant of the next day / ISO week / month / year (an end
//!   already on such a boundary stays), reported as `end − 1 s`.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc,
};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// The longest accepted period, in nominal days (about 1000 years). Keeps the
/// arithmetic far away from chrono's range limits.
const MAX_NOMINAL_DAYS: i64 = 366_000;
/// The longest accepted period string.
const MAX_PERIOD_LEN: usize = 32;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// The unit of a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    fn from_char(c: char) -> Option<Unit> {
        Some(match c {
            's' => Unit::Second,
            'm' => Unit::Minute,
            'h' => Unit::Hour,
            'D' => Unit::Day,
            'W' => Unit::Week,
            'M' => Unit::Month,
            'Y' => Unit::Year,
            _ => return None,
        })
    }

    fn as_char(self) -> char {
        match self {
            Unit::Second => 's',
            Unit::Minute => 'm',
            Unit::Hour => 'h',
            Unit::Day => 'D',
            Unit::Week => 'W',
            Unit::Month => 'M',
            Unit::Year => 'Y',
        }
    }

    /// Length in seconds of one unit for `s m h`, and of one 24-hour day (or
    /// week of them) for `D W`: what a fraction of the unit is measured in.
    fn exact_secs(self) -> Option<i64> {
        match self {
            Unit::Second => Some(1),
            Unit::Minute => Some(60),
            Unit::Hour => Some(3_600),
            Unit::Day => Some(86_400),
            Unit::Week => Some(604_800),
            Unit::Month | Unit::Year => None,
        }
    }

    /// Nominal length in seconds; exact for `s m h`, an average for the rest.
    /// Used only to bound amounts and to estimate window indices.
    fn nominal_secs(self) -> f64 {
        match self {
            Unit::Second => 1.0,
            Unit::Minute => 60.0,
            Unit::Hour => 3_600.0,
            Unit::Day => 86_400.0,
            Unit::Week => 604_800.0,
            Unit::Month => 2_629_746.0,
            Unit::Year => 31_556_952.0,
        }
    }
}

/// How the end of a period is rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rounding {
    None,
    /// `_D`: down to 00:00:00 of the end's day (only after `D`).
    Down,
    /// `_U`: up to the end of the end's day, ISO week, month or year.
    Up,
}

/// A parsed, valid period string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Period {
    amount: Decimal,
    unit: Unit,
    rounding: Rounding,
}

/// Why a period string was refused. Messages are meant for API users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("period must not be empty")]
    Empty,
    #[error("period is longer than {MAX_PERIOD_LEN} characters")]
    TooLong,
    #[error("period must start with a positive number, such as 1D or 1.5h")]
    InvalidAmount,
    #[error("period amount must be greater than zero")]
    ZeroAmount,
    #[error("period needs a unit after the amount: one of s, m, h, D, W, M, Y")]
    MissingUnit,
    #[error("unknown period unit '{0}': use one of s, m, h, D, W, M, Y")]
    UnknownUnit(String),
    #[error("unit {0} needs a whole amount")]
    FractionNotAllowed(char),
    #[error("rounding needs a whole amount")]
    FractionWithRounding,
    #[error("unknown rounding '{0}': use _D (days only) or _U (D, W, M, Y)")]
    UnknownRounding(String),
    #[error("rounding _D is only allowed after unit D")]
    RoundDownNotAllowed,
    #[error("rounding _U is only allowed after units D, W, M and Y")]
    RoundUpNotAllowed,
    #[error("period is too long: at most about 1000 years")]
    Overflow,
    #[error("period amount is too precise: it must be a whole number of nanoseconds")]
    TooPrecise,
}

impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(PeriodError::Empty);
        }
        if s.len() > MAX_PERIOD_LEN {
            return Err(PeriodError::TooLong);
        }
        let amount_len = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let amount_text = &s[..amount_len];
        let valid_shape = {
            let mut parts = amount_text.split('.');
            let whole = parts.next().unwrap_or("");
            let frac = parts.next();
            !whole.is_empty() && parts.next().is_none() && frac.is_none_or(|f| !f.is_empty())
        };
        if !valid_shape {
            return Err(PeriodError::InvalidAmount);
        }
        let amount = Decimal::from_str_exact(amount_text).map_err(|e| match e {
            // Too many digits after the point for a 96-bit decimal.
            rust_decimal::Error::Underflow => PeriodError::TooPrecise,
            _ => PeriodError::Overflow,
        })?;
        if amount.is_zero() {
            return Err(PeriodError::ZeroAmount);
        }
        let rest = &s[amount_len..];
        let mut chars = rest.chars();
        let unit_char = chars.next().ok_or(PeriodError::MissingUnit)?;
        let unit = Unit::from_char(unit_char).ok_or_else(|| {
            PeriodError::UnknownUnit(rest.split('_').next().unwrap_or(rest).to_string())
        })?;
        let suffix = chars.as_str();
        let rounding = match suffix {
            "" => Rounding::None,
            "_D" => Rounding::Down,
            "_U" => Rounding::Up,
            other => return Err(PeriodError::UnknownRounding(other.to_string())),
        };
        let whole = amount.fract().is_zero();
        if matches!(unit, Unit::Month | Unit::Year) && !whole {
            return Err(PeriodError::FractionNotAllowed(unit_char));
        }
        match rounding {
            Rounding::Down if unit != Unit::Day => return Err(PeriodError::RoundDownNotAllowed),
            Rounding::Up if !matches!(unit, Unit::Day | Unit::Week | Unit::Month | Unit::Year) => {
                return Err(PeriodError::RoundUpNotAllowed)
            }
            Rounding::Down | Rounding::Up if !whole => {
                return Err(PeriodError::FractionWithRounding)
            }
            _ => {}
        }
        let nominal_days = amount.to_f64().unwrap_or(f64::MAX) * unit.nominal_secs() / 86_400.0;
        if nominal_days > MAX_NOMINAL_DAYS as f64 {
            return Err(PeriodError::Overflow);
        }
        if let Some(unit_secs) = unit.exact_secs() {
            let nanos = amount
                .checked_mul(Decimal::from(unit_secs))
                .and_then(|v| v.checked_mul(Decimal::from(NANOS_PER_SEC)))
                .ok_or(PeriodError::Overflow)?;
            if !nanos.fract().is_zero() {
                return Err(PeriodError::TooPrecise);
            }
        }
        Ok(Period {
            amount: amount.normalize(),
            unit,
            rounding,
        })
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.as_char())?;
        match self.rounding {
            Rounding::None => Ok(()),
            Rounding::Down => f.write_str("_D"),
            Rounding::Up => f.write_str("_U"),
        }
    }
}

/// The end of a period: the exclusive instant where it stops, and the
/// `endDate` to report (one second earlier for `_U` periods).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodEnd {
    pub end: DateTime<Utc>,
    pub reported: DateTime<Utc>,
}

impl PeriodEnd {
    /// An end that is reported as it is (no `_U` rounding).
    pub fn exact(end: DateTime<Utc>) -> PeriodEnd {
        PeriodEnd { end, reported: end }
    }
}

/// A fixed-schedule window `[start, end)` with its index from the anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub index: i64,
    pub start: DateTime<Utc>,
    pub end: PeriodEnd,
}

impl Period {
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn unit(&self) -> Unit {
        self.unit
    }

    pub fn rounding(&self) -> Rounding {
        self.rounding
    }

    /// The end of a period that starts at `start`: `start + P`, rounded.
    /// `None` only outside chrono's date range, which valid inputs never reach.
    pub fn end_from(&self, start: DateTime<Utc>, tz: Tz) -> Option<PeriodEnd> {
        self.boundary(start, tz, 1)
    }

    /// `anchor + k·P`, rounded (for k ≥ 1; window 0 starts at the anchor itself).
    fn boundary(&self, anchor: DateTime<Utc>, tz: Tz, k: i64) -> Option<PeriodEnd> {
        let raw = self.add_multiple(anchor, tz, k)?;
        self.round(raw, tz)
    }

    /// Window `k` of a schedule anchored at `anchor`: `[b_k, b_{k+1})` with
    /// `b_0 = anchor` and `b_k = round(anchor + k·P)`. Computed from the anchor,
    /// never by repeated addition, so month-end clamping does not drift.
    pub fn window(&self, anchor: DateTime<Utc>, tz: Tz, k: i64) -> Option<Window> {
        let start = if k == 0 {
            anchor
        } else {
            self.boundary(anchor, tz, k)?.end
        };
        let end = self.boundary(anchor, tz, k + 1)?;
        Some(Window {
            index: k,
            start,
            end,
        })
    }

    /// The window of the schedule anchored at `anchor` that contains `t`;
    /// `None` when `t` is before the anchor.
    ///
    /// Window starts increase strictly with `k`, so the index is found by
    /// galloping from an estimate and then bisecting: a bad estimate (tiny
    /// periods, long spans, DST) costs a logarithmic number of steps, never a
    /// linear walk.
    pub fn window_containing(
        &self,
        anchor: DateTime<Utc>,
        tz: Tz,
        t: DateTime<Utc>,
    ) -> Option<Window> {
        if t < anchor {
            return None;
        }
        // Whether window `k` starts after `t`. A start outside chrono's range
        // lies after any `t` that is inside it.
        let starts_after =
            |k: i64| -> bool { k > 0 && self.boundary(anchor, tz, k).is_none_or(|b| b.end > t) };
        let elapsed = t - anchor;
        let elapsed_secs = elapsed.num_seconds() as f64 + f64::from(elapsed.subsec_nanos()) / 1e9;
        let nominal = self.amount.to_f64()? * self.unit.nominal_secs();
        let estimate = (elapsed_secs / nominal).floor();
        let guess = if estimate.is_finite() && estimate > 0.0 {
            estimate.min((i64::MAX / 4) as f64) as i64
        } else {
            0
        };
        // Invariant once found: !starts_after(lo) && starts_after(hi).
        let (mut lo, mut hi);
        if starts_after(guess) {
            hi = guess;
            let mut step = 1i64;
            loop {
                let candidate = hi.saturating_sub(step).max(0);
                if !starts_after(candidate) {
                    lo = candidate;
                    break;
                }
                hi = candidate;
                step = step.saturating_mul(2);
            }
        } else {
            lo = guess;
            let mut step = 1i64;
            loop {
                let candidate = lo.checked_add(step)?;
                if starts_after(candidate) {
                    hi = candidate;
                    break;
                }
                lo = candidate;
                step = step.saturating_mul(2);
            }
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if starts_after(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        self.window(anchor, tz, lo)
    }

    /// `start + k·amount·unit`, unrounded.
    fn add_multiple(&self, start: DateTime<Utc>, tz: Tz, k: i64) -> Option<DateTime<Utc>> {
        let total = self.amount.checked_mul(Decimal::from(k))?;
        match self.unit {
            Unit::Second => add_elapsed(start, total, 1),
            Unit::Minute => add_elapsed(start, total, 60),
            Unit::Hour => add_elapsed(start, total, 3_600),
            Unit::Day => add_days(start, tz, total),
            Unit::Week => add_days(start, tz, total.checked_mul(Decimal::from(7))?),
            Unit::Month => add_months(start, tz, total.to_u32()?),
            Unit::Year => add_months(start, tz, total.checked_mul(Decimal::from(12))?.to_u32()?),
        }
    }

    fn round(&self, raw: DateTime<Utc>, tz: Tz) -> Option<PeriodEnd> {
        let local = raw.with_timezone(&tz).naive_local();
        let date = local.date();
        match self.rounding {
            Rounding::None => Some(PeriodEnd::exact(raw)),
            Rounding::Down => Some(PeriodEnd::exact(resolve_local(
                tz,
                date.and_time(NaiveTime::MIN),
            )?)),
            Rounding::Up => {
                // The first day of the day / ISO week / month / year that
                // contains the raw end.
                let unit_start = match self.unit {
                    Unit::Day => date,
                    Unit::Week => date.checked_sub_signed(Duration::days(i64::from(
                        date.weekday().num_days_from_monday(),
                    )))?,
                    Unit::Month => NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?,
                    _ => NaiveDate::from_ymd_opt(date.year(), 1, 1)?,
                };
                // Ceiling: an end already on a boundary stays there (so a
                // `1M_U` schedule anchored on the 1st at 00:00 is calendar
                // months); otherwise it moves up to the next boundary.
                let next = if local == unit_start.and_time(NaiveTime::MIN) {
                    unit_start
                } else {
                    match self.unit {
                        Unit::Day => unit_start.succ_opt()?,
                        Unit::Week => unit_start.checked_add_signed(Duration::days(7))?,
                        Unit::Month => unit_start.checked_add_months(Months::new(1))?,
                        _ => NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)?,
                    }
                };
                let end = resolve_local(tz, next.and_time(NaiveTime::MIN))?;
                Some(PeriodEnd {
                    end,
                    reported: end - Duration::seconds(1),
                })
            }
        }
    }
}

/// `start + amount × unit_secs` seconds of elapsed time, to the nanosecond.
/// Splits seconds from nanoseconds so that spans beyond 292 years (the range
/// of an `i64` of nanoseconds) still work.
fn add_elapsed(start: DateTime<Utc>, amount: Decimal, unit_secs: i64) -> Option<DateTime<Utc>> {
    let secs_exact = amount.checked_mul(Decimal::from(unit_secs))?;
    let whole_secs = secs_exact.floor();
    let nanos = ((secs_exact - whole_secs) * Decimal::from(NANOS_PER_SEC))
        .round()
        .to_i64()?;
    let delta =
        Duration::try_seconds(whole_secs.to_i64()?)?.checked_add(&Duration::nanoseconds(nanos))?;
    start.checked_add_signed(delta)
}

/// `start` moved by `days` local calendar days, keeping the wall-clock time.
/// Zero days is `start` itself (not its wall-clock time read back, which
/// would move a start in the second half of a fall-back hour to the first).
fn add_whole_days(start: DateTime<Utc>, tz: Tz, days: i64) -> Option<DateTime<Utc>> {
    if days == 0 {
        return Some(start);
    }
    let local = start.with_timezone(&tz).naive_local();
    resolve_local(tz, local.checked_add_signed(Duration::try_days(days)?)?)
}

/// Adds whole local calendar days (keeping the wall-clock time), then the
/// fractional rest as that fraction of the following local day's real length.
fn add_days(start: DateTime<Utc>, tz: Tz, days: Decimal) -> Option<DateTime<Utc>> {
    let whole = days.trunc();
    let whole_days = whole.to_i64()?;
    let base = add_whole_days(start, tz, whole_days)?;
    let frac = days - whole;
    if frac.is_zero() {
        return Some(base);
    }
    let next = add_whole_days(start, tz, whole_days.checked_add(1)?)?;
    let span_nanos = (next - base).num_nanoseconds()?;
    let nanos = frac
        .checked_mul(Decimal::from(span_nanos))?
        .round()
        .to_i64()?;
    base.checked_add_signed(Duration::nanoseconds(nanos))
}

/// Adds calendar months in local time; a day that does not exist in the target
/// month is clamped to its last day.
fn add_months(start: DateTime<Utc>, tz: Tz, months: u32) -> Option<DateTime<Utc>> {
    let local = start.with_timezone(&tz).naive_local();
    resolve_local(tz, local.checked_add_months(Months::new(months))?)
}

/// Maps a local wall-clock time to an instant: the earlier instant when it is
/// ambiguous, and past the gap (by the gap's length) when it does not exist.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        LocalResult::None => {
            // Inside a gap: read the wall-clock time with the offset in force
            // just before the gap, which lands as far past the gap as the time
            // was into it.
            let before = local.checked_sub_signed(Duration::days(1))?;
            let offset = match tz.from_local_datetime(&before) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.offset().fix(),
                LocalResult::None => return None,
            };
            let utc =
                local.checked_sub_signed(Duration::seconds(i64::from(offset.local_minus_utc())))?;
            Some(Utc.from_utc_datetime(&utc))
        }
    }
}

#[cfg(test)]
mod tests;
