use super::*;

use chrono_tz::America::New_York;
use chrono_tz::Europe::Berlin;
use chrono_tz::UTC as UTC_TZ;
use proptest::prelude::*;

// ---------------------------------------------------------------- helpers

fn p(text: &str) -> Period {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn err(text: &str) -> PeriodError {
    match text.parse::<Period>() {
        Ok(p) => panic!("{text:?} should be refused, parsed as {p:?}"),
        Err(e) => e,
    }
}

fn naive(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("bad test time {text:?}: {e}"))
}

/// An instant given in UTC.
fn utc(text: &str) -> DateTime<Utc> {
    naive(text).and_utc()
}

/// An instant given as a local wall-clock time that exists exactly once in `tz`.
fn local(tz: Tz, text: &str) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive(text)) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        other => panic!("{text} is not a unique local time in {tz}: {other:?}"),
    }
}

/// The wall-clock time of `t` in `tz`, formatted like the helpers' input.
fn wall(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .naive_local()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn end(period: &str, start: DateTime<Utc>, tz: Tz) -> PeriodEnd {
    p(period)
        .end_from(start, tz)
        .unwrap_or_else(|| panic!("{period} from {start} has no end"))
}

fn window(period: &str, anchor: DateTime<Utc>, tz: Tz, k: i64) -> Window {
    p(period)
        .window(anchor, tz, k)
        .unwrap_or_else(|| panic!("{period} window {k} from {anchor} missing"))
}

fn containing(period: &str, anchor: DateTime<Utc>, tz: Tz, t: DateTime<Utc>) -> Window {
    p(period)
        .window_containing(anchor, tz, t)
        .unwrap_or_else(|| panic!("{period} from {anchor}: no window contains {t}"))
}

// ----------------------------------------------------------------- parser

#[test]
fn parses_valid_periods_into_their_parts() {
    let cases: &[(&str, &str, Unit, Rounding)] = &[
        ("1D", "1", Unit::Day, Rounding::None),
        ("1.5h", "1.5", Unit::Hour, Rounding::None),
        ("3M_U", "3", Unit::Month, Rounding::Up),
        ("30D_D", "30", Unit::Day, Rounding::Down),
        ("2W_U", "2", Unit::Week, Rounding::Up),
        ("1Y_U", "1", Unit::Year, Rounding::Up),
        ("10s", "10", Unit::Second, Rounding::None),
        ("40m", "40", Unit::Minute, Rounding::None),
        ("7W", "7", Unit::Week, Rounding::None),
        ("1D_U", "1", Unit::Day, Rounding::Up),
        ("0.5s", "0.5", Unit::Second, Rounding::None),
        ("2.25D", "2.25", Unit::Day, Rounding::None),
        ("1.5W", "1.5", Unit::Week, Rounding::None),
        ("12M", "12", Unit::Month, Rounding::None),
        ("1000Y", "1000", Unit::Year, Rounding::None),
    ];
    for &(text, amount, unit, rounding) in cases {
        let period = p(text);
        assert_eq!(
            period.amount(),
            amount.parse::<Decimal>().unwrap(),
            "{text}"
        );
        assert_eq!(period.unit(), unit, "{text}");
        assert_eq!(period.rounding(), rounding, "{text}");
    }
}

#[test]
fn whole_amounts_with_a_zero_fraction_are_whole() {
    // `1.0M` is a whole number of months, so it is accepted and equals `1M`.
    assert_eq!(p("1.0M"), p("1M"));
    assert_eq!(p("2.00Y_U"), p("2Y_U"));
    assert_eq!(p("007D"), p("7D"));
}

#[test]
fn refuses_invalid_periods_with_the_specific_error() {
    let cases: &[(&str, PeriodError)] = &[
        ("", PeriodError::Empty),
        ("0D", PeriodError::ZeroAmount),
        ("0.0h", PeriodError::ZeroAmount),
        ("000M", PeriodError::ZeroAmount),
        ("1.5M", PeriodError::FractionNotAllowed('M')),
        ("1.5Y", PeriodError::FractionNotAllowed('Y')),
        ("3X", PeriodError::UnknownUnit("X".into())),
        ("3d", PeriodError::UnknownUnit("d".into())),
        ("3H", PeriodError::UnknownUnit("H".into())),
        ("3Xy_U", PeriodError::UnknownUnit("Xy".into())),
        ("1M_D", PeriodError::RoundDownNotAllowed),
        ("1W_D", PeriodError::RoundDownNotAllowed),
        ("1Y_D", PeriodError::RoundDownNotAllowed),
        ("1h_D", PeriodError::RoundDownNotAllowed),
        ("1h_U", PeriodError::RoundUpNotAllowed),
        ("1m_U", PeriodError::RoundUpNotAllowed),
        ("1s_U", PeriodError::RoundUpNotAllowed),
        ("1D_X", PeriodError::UnknownRounding("_X".into())),
        ("1D_u", PeriodError::UnknownRounding("_u".into())),
        ("1D_", PeriodError::UnknownRounding("_".into())),
        ("1D_U_U", PeriodError::UnknownRounding("_U_U".into())),
        ("1D ", PeriodError::UnknownRounding(" ".into())),
        ("D", PeriodError::InvalidAmount),
        (".5h", PeriodError::InvalidAmount),
        ("1.h", PeriodError::InvalidAmount),
        ("-1D", PeriodError::InvalidAmount),
        ("+1D", PeriodError::InvalidAmount),
        (" 1D", PeriodError::InvalidAmount),
        ("1..2h", PeriodError::InvalidAmount),
        ("1.2.3h", PeriodError::InvalidAmount),
        ("1", PeriodError::MissingUnit),
        ("1.5", PeriodError::MissingUnit),
        ("1.5D_U", PeriodError::FractionWithRounding),
        ("1.5D_D", PeriodError::FractionWithRounding),
        ("1.5W_U", PeriodError::FractionWithRounding),
        ("99999999Y", PeriodError::Overflow),
        ("12100M", PeriodError::Overflow),
        ("366001D", PeriodError::Overflow),
        ("99999999999999999999999999999999", PeriodError::Overflow),
        ("0.0000000001s", PeriodError::TooPrecise),
        ("0.0000000000001h", PeriodError::TooPrecise),
        ("1.0000000000000000000000000000001s", PeriodError::TooLong),
        ("1.00000000000000000000000000001s", PeriodError::TooPrecise),
        (&"1".repeat(40), PeriodError::TooLong),
    ];
    for (text, expected) in cases {
        assert_eq!(&err(text), expected, "{text:?}");
    }
}

#[test]
fn length_limit_is_exactly_32_characters() {
    // 31 digits of amount plus the unit: accepted as far as length goes (and
    // refused because it is far beyond 1000 years).
    let at_limit = format!("{}D", "0".repeat(30) + "1");
    assert_eq!(at_limit.len(), 32);
    assert_eq!(p(&at_limit), p("1D"));
    let over = format!("{}D", "0".repeat(31) + "1");
    assert_eq!(err(&over), PeriodError::TooLong);
}

#[test]
fn the_longest_periods_are_accepted_and_have_an_end() {
    // About 1000 years in every unit must be usable, not only parseable: an
    // elapsed span beyond 292 years overflows an i64 of nanoseconds.
    let start = utc("2023-10-10 09:30:45");
    for text in [
        "1000Y",
        "12000M",
        "52000W",
        "366000D",
        "8784000h",
        "31536000000s",
    ] {
        let e = end(text, start, UTC_TZ);
        assert!(e.end > start + Duration::days(365 * 990), "{text}: {e:?}");
    }
    assert_eq!(
        end("31536000000s", start, UTC_TZ).end,
        start + Duration::seconds(31_536_000_000)
    );
    assert_eq!(end("1000Y", start, UTC_TZ).end, utc("3023-10-10 09:30:45"));
}

#[test]
fn errors_have_messages_for_api_users() {
    assert_eq!(
        err("3X").to_string(),
        "unknown period unit 'X': use one of s, m, h, D, W, M, Y"
    );
    assert_eq!(err("1.5M").to_string(), "unit M needs a whole amount");
    assert!(err("0.0000000001s").to_string().contains("nanosecond"));
}

#[test]
fn display_normalizes_and_round_trips() {
    let cases = [
        ("1.50h", "1.5h"),
        ("1D", "1D"),
        ("10D", "10D"),
        ("100s", "100s"),
        ("3M_U", "3M_U"),
        ("30D_D", "30D_D"),
        ("0.25m", "0.25m"),
        ("007W_U", "7W_U"),
        ("2.0Y", "2Y"),
    ];
    for (text, shown) in cases {
        let period = p(text);
        assert_eq!(period.to_string(), shown, "{text}");
        assert_eq!(p(&period.to_string()), period, "{text}");
    }
}

// ------------------------------------------------------ user-action ends

#[test]
fn spec_user_action_rows() {
    let start = utc("2023-10-10 09:30:45");
    let rows = [
        ("1D", "2023-10-11 09:30:45"),
        ("1W", "2023-10-17 09:30:45"),
        ("1M", "2023-11-10 09:30:45"),
        ("1Y", "2024-10-10 09:30:45"),
    ];
    for (period, expected) in rows {
        assert_eq!(
            end(period, start, UTC_TZ),
            PeriodEnd::exact(utc(expected)),
            "{period}"
        );
    }
    assert_eq!(
        end("3M_U", start, UTC_TZ),
        PeriodEnd {
            end: utc("2024-02-01 00:00:00"),
            reported: utc("2024-01-31 23:59:59"),
        }
    );
}

#[test]
fn elapsed_units_are_exact() {
    let start = utc("2023-10-10 09:30:45");
    assert_eq!(end("10s", start, UTC_TZ).end, utc("2023-10-10 09:30:55"));
    assert_eq!(end("40m", start, UTC_TZ).end, utc("2023-10-10 10:10:45"));
    assert_eq!(end("1.5h", start, UTC_TZ).end, utc("2023-10-10 11:00:45"));
    assert_eq!(
        end("0.5s", start, UTC_TZ).end,
        start + Duration::milliseconds(500)
    );
    assert_eq!(
        end("0.000000001s", start, UTC_TZ).end,
        start + Duration::nanoseconds(1)
    );
}

#[test]
fn fractional_days_and_weeks() {
    let start = utc("2023-10-10 09:30:45");
    assert_eq!(end("1.5D", start, UTC_TZ).end, utc("2023-10-11 21:30:45"));
    assert_eq!(end("0.5D", start, UTC_TZ).end, utc("2023-10-10 21:30:45"));
    assert_eq!(end("1.5W", start, UTC_TZ).end, utc("2023-10-20 21:30:45"));
}

#[test]
fn month_end_is_clamped() {
    let cases = [
        ("2023-01-31 10:00:00", "1M", "2023-02-28 10:00:00"),
        ("2024-01-31 10:00:00", "1M", "2024-02-29 10:00:00"),
        ("2024-02-29 10:00:00", "1Y", "2025-02-28 10:00:00"),
        ("2024-02-29 10:00:00", "4Y", "2028-02-29 10:00:00"),
        ("2024-03-31 10:00:00", "1M", "2024-04-30 10:00:00"),
        ("2023-08-31 10:00:00", "1M", "2023-09-30 10:00:00"),
        ("2023-10-31 10:00:00", "4M", "2024-02-29 10:00:00"),
        ("2023-12-31 23:59:59", "2M", "2024-02-29 23:59:59"),
        ("2023-01-31 10:00:00", "12M", "2024-01-31 10:00:00"),
    ];
    for (start, period, expected) in cases {
        assert_eq!(
            end(period, utc(start), UTC_TZ),
            PeriodEnd::exact(utc(expected)),
            "{start} + {period}"
        );
    }
}

#[test]
fn round_down_moves_the_end_to_midnight_and_reports_it_as_is() {
    let start = utc("2023-10-10 09:30:00");
    assert_eq!(
        end("30D_D", start, UTC_TZ),
        PeriodEnd::exact(utc("2023-11-09 00:00:00"))
    );
    assert_eq!(
        end("1D_D", start, UTC_TZ),
        PeriodEnd::exact(utc("2023-10-11 00:00:00"))
    );
    // Already at midnight: unchanged.
    assert_eq!(
        end("1D_D", utc("2023-10-10 00:00:00"), UTC_TZ),
        PeriodEnd::exact(utc("2023-10-11 00:00:00"))
    );
    // Midnight is local midnight.
    let berlin_start = local(Berlin, "2024-01-10 09:30:00");
    assert_eq!(
        end("1D_D", berlin_start, Berlin),
        PeriodEnd::exact(local(Berlin, "2024-01-11 00:00:00"))
    );
    assert_eq!(
        end("1D_D", berlin_start, Berlin).end,
        utc("2024-01-10 23:00:00")
    );
}

#[test]
fn round_up_ends_at_the_end_of_the_day_week_month_year() {
    let start = utc("2023-10-10 09:30:45");
    let up = |period: &str, end_at: &str, reported: &str| {
        assert_eq!(
            end(period, start, UTC_TZ),
            PeriodEnd {
                end: utc(end_at),
                reported: utc(reported),
            },
            "{period}"
        );
    };
    up("1D_U", "2023-10-12 00:00:00", "2023-10-11 23:59:59");
    up("30D_U", "2023-11-10 00:00:00", "2023-11-09 23:59:59");
    // 2023-10-10 is a Tuesday; +1W is Tuesday 17th; its ISO week ends Sunday 22nd.
    up("1W_U", "2023-10-23 00:00:00", "2023-10-22 23:59:59");
    up("2W_U", "2023-10-30 00:00:00", "2023-10-29 23:59:59");
    up("1M_U", "2023-12-01 00:00:00", "2023-11-30 23:59:59");
    up("3M_U", "2024-02-01 00:00:00", "2024-01-31 23:59:59");
    up("1Y_U", "2025-01-01 00:00:00", "2024-12-31 23:59:59");
}

#[test]
fn week_round_up_from_sunday_and_monday() {
    // Sunday 5 Nov + 1W = Sunday 12 Nov 10:00: that ISO week ends that Sunday.
    let sunday = utc("2023-11-05 10:00:00");
    assert_eq!(
        end("1W_U", sunday, UTC_TZ),
        PeriodEnd {
            end: utc("2023-11-13 00:00:00"),
            reported: utc("2023-11-12 23:59:59"),
        }
    );
    // Monday 6 Nov + 1W = Monday 13 Nov: its week ends Sunday 19 Nov.
    let monday = utc("2023-11-06 10:00:00");
    assert_eq!(
        end("1W_U", monday, UTC_TZ),
        PeriodEnd {
            end: utc("2023-11-20 00:00:00"),
            reported: utc("2023-11-19 23:59:59"),
        }
    );
    // A day period ending on a Sunday with _U ends that Sunday too.
    assert_eq!(
        end("5D_U", utc("2023-11-07 10:00:00"), UTC_TZ).reported,
        utc("2023-11-12 23:59:59")
    );
}

#[test]
fn round_up_crosses_year_end() {
    assert_eq!(
        end("1M_U", utc("2023-11-30 12:00:00"), UTC_TZ).end,
        utc("2024-01-01 00:00:00")
    );
    assert_eq!(
        end("1D_U", utc("2023-12-31 12:00:00"), UTC_TZ).end,
        utc("2024-01-02 00:00:00")
    );
    // 2024-12-30 is a Monday in ISO week 1 of 2025.
    assert_eq!(
        end("1W_U", utc("2024-12-23 12:00:00"), UTC_TZ).reported,
        utc("2025-01-05 23:59:59")
    );
}

// -------------------------------------------------------------------- DST

#[test]
fn berlin_day_keeps_wall_clock_time_across_dst() {
    // Spring forward 2024-03-31 02:00 CET -> 03:00 CEST: a 23-hour day.
    let start = local(Berlin, "2024-03-30 09:30:00");
    let e = end("1D", start, Berlin);
    assert_eq!(wall(e.end, Berlin), "2024-03-31 09:30:00");
    assert_eq!(e.end - start, Duration::hours(23));
    assert_eq!(e.end, utc("2024-03-31 07:30:00"));
    // Fall back 2024-10-27 03:00 CEST -> 02:00 CET: a 25-hour day.
    let start = local(Berlin, "2024-10-26 09:30:00");
    let e = end("1D", start, Berlin);
    assert_eq!(wall(e.end, Berlin), "2024-10-27 09:30:00");
    assert_eq!(e.end - start, Duration::hours(25));
}

#[test]
fn new_york_day_keeps_wall_clock_time_across_dst() {
    // 2024-03-10 02:00 EST -> 03:00 EDT.
    let start = local(New_York, "2024-03-09 09:30:00");
    let e = end("1D", start, New_York);
    assert_eq!(e.end, utc("2024-03-10 13:30:00"));
    assert_eq!(e.end - start, Duration::hours(23));
    // 2024-11-03 02:00 EDT -> 01:00 EST.
    let start = local(New_York, "2024-11-02 09:30:00");
    let e = end("1D", start, New_York);
    assert_eq!(e.end, utc("2024-11-03 14:30:00"));
    assert_eq!(e.end - start, Duration::hours(25));
}

#[test]
fn week_does_not_shift_by_an_hour_across_dst() {
    for (tz, start, expected) in [
        (Berlin, "2024-03-28 09:30:00", "2024-04-04 09:30:00"),
        (Berlin, "2024-10-24 18:00:00", "2024-10-31 18:00:00"),
        (New_York, "2024-03-08 09:30:00", "2024-03-15 09:30:00"),
        (New_York, "2024-11-01 18:00:00", "2024-11-08 18:00:00"),
    ] {
        let s = local(tz, start);
        let e = end("1W", s, tz);
        assert_eq!(wall(e.end, tz), expected, "{tz} {start}");
        let real = e.end - s;
        assert!(
            real == Duration::hours(167) || real == Duration::hours(169),
            "{tz} {start}: {real}"
        );
    }
    assert_eq!(
        end("1W", local(New_York, "2024-11-01 18:00:00"), New_York).end,
        utc("2024-11-08 23:00:00")
    );
}

#[test]
fn hours_are_elapsed_time_and_differ_from_a_day_across_dst() {
    let start = local(Berlin, "2024-03-30 09:30:00");
    let hours = end("24h", start, Berlin).end;
    assert_eq!(hours - start, Duration::hours(24));
    assert_eq!(wall(hours, Berlin), "2024-03-31 10:30:00");
    assert_ne!(hours, end("1D", start, Berlin).end);

    let start = local(New_York, "2024-11-02 09:30:00");
    let hours = end("24h", start, New_York).end;
    assert_eq!(wall(hours, New_York), "2024-11-03 08:30:00");
    assert_eq!(end("1440m", start, New_York).end, hours);
    assert_eq!(end("86400s", start, New_York).end, hours);
}

#[test]
fn day_round_up_ends_at_local_midnight_across_dst() {
    let start = local(Berlin, "2024-03-30 09:30:00");
    let e = end("1D_U", start, Berlin);
    assert_eq!(wall(e.end, Berlin), "2024-04-01 00:00:00");
    assert_eq!(e.end, utc("2024-03-31 22:00:00"));
    assert_eq!(wall(e.reported, Berlin), "2024-03-31 23:59:59");

    let start = local(Berlin, "2024-10-26 09:30:00");
    let e = end("1D_U", start, Berlin);
    assert_eq!(e.end, utc("2024-10-27 23:00:00"));
    assert_eq!(wall(e.reported, Berlin), "2024-10-27 23:59:59");

    let start = local(New_York, "2024-03-09 20:00:00");
    let e = end("1D_U", start, New_York);
    assert_eq!(e.end, utc("2024-03-11 04:00:00"));

    // Month round-up ends at local midnight in summer time.
    let start = local(Berlin, "2024-02-10 12:00:00");
    assert_eq!(end("1M_U", start, Berlin).end, utc("2024-03-31 22:00:00"));
}

#[test]
fn nonexistent_local_end_moves_forward_past_the_gap() {
    // 2024-03-31 02:30 does not exist in Berlin: it becomes 03:30 CEST.
    let start = local(Berlin, "2024-03-30 02:30:00");
    assert_eq!(start, utc("2024-03-30 01:30:00"));
    let e = end("1D", start, Berlin).end;
    assert_eq!(wall(e, Berlin), "2024-03-31 03:30:00");
    assert_eq!(e, utc("2024-03-31 01:30:00"));
    // 2024-03-10 02:30 does not exist in New York: 03:30 EDT.
    let start = local(New_York, "2024-03-09 02:30:00");
    let e = end("1D", start, New_York).end;
    assert_eq!(e, utc("2024-03-10 07:30:00"));
    assert_eq!(wall(e, New_York), "2024-03-10 03:30:00");
    // From a month earlier too.
    let start = local(Berlin, "2024-02-29 02:15:00");
    assert_eq!(
        wall(end("1M", start, Berlin).end, Berlin),
        "2024-03-29 02:15:00"
    );
    let start = local(Berlin, "2023-03-31 02:15:00");
    assert_eq!(
        wall(end("1Y", start, Berlin).end, Berlin),
        "2024-03-31 03:15:00"
    );
}

#[test]
fn ambiguous_local_end_takes_the_earlier_instant() {
    // 2024-10-27 02:30 happens twice in Berlin: 00:30 UTC (CEST) and 01:30 UTC (CET).
    let start = local(Berlin, "2024-10-26 02:30:00");
    assert_eq!(end("1D", start, Berlin).end, utc("2024-10-27 00:30:00"));
    // 2024-11-03 01:30 happens twice in New York: 05:30 UTC (EDT) first.
    let start = local(New_York, "2024-11-02 01:30:00");
    assert_eq!(end("1D", start, New_York).end, utc("2024-11-03 05:30:00"));
}

#[test]
fn resolve_local_follows_the_gap_and_ambiguity_rules() {
    assert_eq!(
        resolve_local(Berlin, naive("2024-03-31 02:00:00")),
        Some(utc("2024-03-31 01:00:00"))
    );
    assert_eq!(
        resolve_local(Berlin, naive("2024-03-31 02:59:59")),
        Some(utc("2024-03-31 01:59:59"))
    );
    assert_eq!(
        resolve_local(Berlin, naive("2024-10-27 02:00:00")),
        Some(utc("2024-10-27 00:00:00"))
    );
    assert_eq!(
        resolve_local(Berlin, naive("2024-06-01 12:00:00")),
        Some(utc("2024-06-01 10:00:00"))
    );
}

#[test]
fn start_in_the_repeated_hour_is_not_moved_back() {
    // 01:30 UTC is the *second* 02:30 in Berlin on 2024-10-27. A period shorter
    // than a day must still end after it (reading its wall-clock time back
    // would give the first 02:30, an hour earlier).
    let start = utc("2024-10-27 01:30:00");
    for period in ["0.5D", "0.01D", "0.1W"] {
        let e = end(period, start, Berlin).end;
        assert!(e > start, "{period}: {e}");
    }
    assert_eq!(end("0.5D", start, Berlin).end, utc("2024-10-27 13:30:00"));
    // Whole days from the second 02:30 keep its wall-clock time.
    assert_eq!(end("1D", start, Berlin).end, utc("2024-10-28 01:30:00"));
}

#[test]
fn fraction_of_a_day_is_measured_on_the_following_local_day() {
    // Across normal days 1.5D is one day + 12 h.
    let start = local(Berlin, "2024-03-28 09:30:00");
    assert_eq!(
        wall(end("1.5D", start, Berlin).end, Berlin),
        "2024-03-29 21:30:00"
    );
    // One day later, the half day is half of the 23-hour Sat 09:30 -> Sun 09:30.
    let start = local(Berlin, "2024-03-29 09:30:00");
    assert_eq!(
        wall(end("1.5D", start, Berlin).end, Berlin),
        "2024-03-30 21:00:00"
    );
    // Half of the 23-hour day that starts Saturday 21:00 is 11.5 h.
    let start = local(Berlin, "2024-03-30 21:00:00");
    let e = end("0.5D", start, Berlin).end;
    assert_eq!(e - start, Duration::minutes(11 * 60 + 30));
    // A 25-hour day.
    let start = local(Berlin, "2024-10-26 21:00:00");
    let e = end("0.5D", start, Berlin).end;
    assert_eq!(e - start, Duration::minutes(12 * 60 + 30));
}

// --------------------------------------------------------- fixed windows

#[test]
fn monthly_windows_from_the_31st_do_not_drift() {
    let anchor = utc("2023-01-31 00:00:00");
    let expected = [
        ("2023-01-31", "2023-02-28"),
        ("2023-02-28", "2023-03-31"),
        ("2023-03-31", "2023-04-30"),
        ("2023-04-30", "2023-05-31"),
        ("2023-05-31", "2023-06-30"),
        ("2023-12-31", "2024-01-31"),
        ("2024-01-31", "2024-02-29"),
    ];
    for (k, (start, end_at)) in [0, 1, 2, 3, 4, 11, 12].into_iter().zip(expected) {
        let w = window("1M", anchor, UTC_TZ, k);
        assert_eq!(w.index, k);
        assert_eq!(w.start, utc(&format!("{start} 00:00:00")), "window {k}");
        assert_eq!(
            w.end,
            PeriodEnd::exact(utc(&format!("{end_at} 00:00:00"))),
            "window {k}"
        );
    }
}

#[test]
fn window_containing_picks_the_right_window() {
    let anchor = utc("2023-01-31 00:00:00");
    assert_eq!(
        p("1M").window_containing(anchor, UTC_TZ, utc("2023-01-30 23:59:59")),
        None
    );
    assert_eq!(containing("1M", anchor, UTC_TZ, anchor).index, 0);
    assert_eq!(
        containing("1M", anchor, UTC_TZ, utc("2023-02-27 23:59:59")).index,
        0
    );
    // A boundary belongs to the later window.
    let w = containing("1M", anchor, UTC_TZ, utc("2023-02-28 00:00:00"));
    assert_eq!(w, window("1M", anchor, UTC_TZ, 1));
    let w = containing("1M", anchor, UTC_TZ, utc("2023-03-01 00:00:00"));
    assert_eq!(w.index, 1);
    assert_eq!(w.end.end, utc("2023-03-31 00:00:00"));
    // Far away: Jan 2023 + 76 months = May 2029, clamped consistently.
    let w = containing("1M", anchor, UTC_TZ, utc("2029-06-15 12:00:00"));
    assert_eq!(w.index, 76);
    assert_eq!(w.start, utc("2029-05-31 00:00:00"));
    assert_eq!(w.end.end, utc("2029-06-30 00:00:00"));
    // The nanosecond before a boundary belongs to the earlier window.
    let just_before = utc("2023-04-30 00:00:00") - Duration::nanoseconds(1);
    assert_eq!(containing("1M", anchor, UTC_TZ, just_before).index, 2);
}

#[test]
fn spec_fixed_schedule_rows() {
    let w = containing(
        "1M",
        utc("2023-10-10 00:00:00"),
        UTC_TZ,
        utc("2023-10-18 10:20:00"),
    );
    assert_eq!(w.index, 0);
    assert_eq!(w.start, utc("2023-10-10 00:00:00"));
    assert_eq!(w.end, PeriodEnd::exact(utc("2023-11-10 00:00:00")));

    let w = containing(
        "2Y",
        utc("2023-01-01 00:00:00"),
        UTC_TZ,
        utc("2023-08-12 14:15:02"),
    );
    assert_eq!(w.index, 0);
    assert_eq!(w.end, PeriodEnd::exact(utc("2025-01-01 00:00:00")));
    let w = containing(
        "2Y",
        utc("2023-01-01 00:00:00"),
        UTC_TZ,
        utc("2025-01-01 00:00:00"),
    );
    assert_eq!(w.index, 1);
    assert_eq!(w.end.end, utc("2027-01-01 00:00:00"));
}

#[test]
fn weekly_windows_in_berlin_keep_their_local_start_across_dst() {
    let anchor = local(Berlin, "2024-03-18 00:00:00"); // a Monday in winter time
    for k in 0..40 {
        let w = window("1W", anchor, Berlin, k);
        let start = w.start.with_timezone(&Berlin);
        assert_eq!(start.weekday(), chrono::Weekday::Mon, "window {k}");
        assert_eq!(start.time(), NaiveTime::MIN, "window {k}");
        assert_eq!(w.end.end, window("1W", anchor, Berlin, k + 1).start);
    }
    // The week that contains the spring change is an hour short, the one
    // containing the autumn change an hour long.
    let spring = containing("1W", anchor, Berlin, utc("2024-03-31 12:00:00"));
    assert_eq!(spring.end.end - spring.start, Duration::hours(167));
    let autumn = containing("1W", anchor, Berlin, utc("2024-10-27 12:00:00"));
    assert_eq!(autumn.end.end - autumn.start, Duration::hours(169));
    assert_eq!(wall(autumn.start, Berlin), "2024-10-21 00:00:00");
}

#[test]
fn daily_windows_in_new_york_keep_their_local_start_across_dst() {
    let anchor = local(New_York, "2024-03-01 09:30:00");
    for t in [
        "2024-03-10 12:00:00",
        "2024-11-03 12:00:00",
        "2024-07-04 09:30:00",
    ] {
        let w = containing("1D", anchor, New_York, local(New_York, t));
        assert_eq!(&wall(w.start, New_York)[11..], "09:30:00", "{t}");
        assert_eq!(&wall(w.end.end, New_York)[11..], "09:30:00", "{t}");
        assert_eq!(&wall(w.start, New_York)[..10], &t[..10], "{t}");
    }
}

#[test]
fn rounded_windows_tile_and_report_a_second_early() {
    let anchor = utc("2023-10-10 09:30:45");
    let w0 = window("1M_U", anchor, UTC_TZ, 0);
    assert_eq!(w0.start, anchor);
    assert_eq!(w0.end.end, utc("2023-12-01 00:00:00"));
    assert_eq!(w0.end.reported, utc("2023-11-30 23:59:59"));
    let w1 = window("1M_U", anchor, UTC_TZ, 1);
    assert_eq!(w1.start, w0.end.end);
    assert_eq!(w1.end.end, utc("2024-01-01 00:00:00"));

    let w0 = window("30D_D", anchor, UTC_TZ, 0);
    assert_eq!(w0.end, PeriodEnd::exact(utc("2023-11-09 00:00:00")));
    let w1 = window("30D_D", anchor, UTC_TZ, 1);
    assert_eq!(w1.start, utc("2023-11-09 00:00:00"));
    assert_eq!(w1.end.end, utc("2023-12-09 00:00:00"));
}

#[test]
fn window_zero_ends_where_end_from_the_anchor_ends() {
    let anchor = local(Berlin, "2024-03-30 09:30:00");
    for text in ["1D", "1W", "1M", "1M_U", "30D_D", "1.5h", "1Y_U"] {
        assert_eq!(
            window(text, anchor, Berlin, 0).end,
            end(text, anchor, Berlin),
            "{text}"
        );
    }
}

#[test]
fn window_containing_is_fast_and_exact_for_tiny_periods() {
    // 1 ns windows, 200 years after the anchor: the index must be exact and
    // found without walking window by window.
    let anchor = utc("2000-01-01 00:00:00");
    let t = utc("2200-06-01 12:34:56") + Duration::nanoseconds(123_456_789);
    let w = containing("0.000000001s", anchor, UTC_TZ, t);
    assert_eq!(w.start, t);
    assert_eq!(w.end.end, t + Duration::nanoseconds(1));
    // Tiny day fractions across DST: half a second.
    let anchor = local(Berlin, "2024-03-30 12:00:00");
    let t = utc("2024-03-31 05:00:00") + Duration::milliseconds(250);
    let w = containing("0.00001D", anchor, Berlin, t);
    assert!(w.start <= t && t < w.end.end, "{w:?}");
}

// ------------------------------------------------------------- properties

const ZONES: [Tz; 5] = [
    chrono_tz::UTC,
    chrono_tz::Europe::Berlin,
    chrono_tz::America::New_York,
    chrono_tz::Australia::Sydney,
    chrono_tz::Asia::Kolkata,
];

const WINDOW_PERIODS: [&str; 14] = [
    "1D", "1W", "1M", "1M_U", "2W_U", "30D_D", "1.5h", "1Y", "1D_U", "1D_D", "1Y_U", "1.5D",
    "0.01D", "45m",
];

fn anchor_strategy() -> impl Strategy<Value = DateTime<Utc>> {
    // 1990 .. 2060, with sub-second parts.
    (631_152_000i64..2_871_763_200, 0u32..1_000_000_000)
        .prop_map(|(s, ns)| DateTime::from_timestamp(s, ns).expect("in range"))
}

fn period_char() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        '0', '1', '2', '3', '5', '9', '.', 's', 'm', 'h', 'D', 'W', 'M', 'Y', '_', 'U', 'D',
    ])
}

fn valid_period_strategy() -> impl Strategy<Value = String> {
    let whole = (
        1u32..1000,
        prop::sample::select(vec!["D", "W", "M", "Y"]),
        prop::sample::select(vec!["", "_U"]),
    )
        .prop_map(|(n, u, r)| format!("{n}{u}{r}"));
    let down = (1u32..3000).prop_map(|n| format!("{n}D_D"));
    let fractional = (
        0u64..50_000,
        0u32..10,
        prop::sample::select(vec!["s", "m", "h", "D", "W"]),
    )
        .prop_map(|(n, scale, u)| format!("{}{u}", Decimal::new((n + 1) as i64, scale)));
    prop_oneof![whole, down, fractional]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn fixed_windows_tile_time(
        anchor in anchor_strategy(),
        period in prop::sample::select(WINDOW_PERIODS.to_vec()),
        tz in prop::sample::select(ZONES.to_vec()),
    ) {
        let period = p(period);
        let mut previous = period.window(anchor, tz, 0).expect("window 0");
        prop_assert_eq!(previous.start, anchor);
        for k in 0..50 {
            let next = period.window(anchor, tz, k + 1).expect("window");
            prop_assert!(previous.start < previous.end.end, "window {} empty: {:?}", k, previous);
            prop_assert!(previous.end.reported <= previous.end.end);
            prop_assert_eq!(previous.end.end, next.start, "gap or overlap after window {}", k);
            prop_assert_eq!(next.index, k + 1);
            previous = next;
        }
    }

    #[test]
    fn window_containing_contains(
        anchor in anchor_strategy(),
        offset_secs in 0i64..(40 * 366 * 86_400),
        offset_nanos in 0i64..1_000_000_000,
        period in prop::sample::select(WINDOW_PERIODS.to_vec()),
        tz in prop::sample::select(ZONES.to_vec()),
    ) {
        let period = p(period);
        let t = anchor + Duration::seconds(offset_secs) + Duration::nanoseconds(offset_nanos);
        let w = period.window_containing(anchor, tz, t).expect("a window");
        prop_assert!(w.start <= t && t < w.end.end, "{:?} does not contain {}", w, t);
        prop_assert_eq!(Some(w), period.window(anchor, tz, w.index));
        prop_assert_eq!(period.window_containing(anchor, tz, w.start), Some(w));
        prop_assert_eq!(
            period.window_containing(anchor, tz, anchor - Duration::nanoseconds(1)),
            None
        );
    }

    #[test]
    fn parser_never_panics(text in any::<String>()) {
        let _ = text.parse::<Period>();
    }

    #[test]
    fn parser_never_panics_on_the_period_alphabet(
        chars in prop::collection::vec(period_char(), 0..40)
    ) {
        let text: String = chars.into_iter().collect();
        if let Ok(period) = text.parse::<Period>() {
            // Whatever parses, displays as something that parses back to it.
            prop_assert_eq!(p(&period.to_string()), period.clone());
            prop_assert!(period.amount() > Decimal::ZERO);
            let start = utc("2023-10-10 09:30:45");
            let e = period.end_from(start, chrono_tz::Europe::Berlin).expect("an end");
            prop_assert!(e.end > start);
        }
    }

    #[test]
    fn every_valid_period_ends_after_its_start(
        text in valid_period_strategy(),
        start in anchor_strategy(),
        tz in prop::sample::select(ZONES.to_vec()),
    ) {
        if let Ok(period) = text.parse::<Period>() {
            let e = period.end_from(start, tz).expect("an end");
            prop_assert!(e.end > start, "{} from {}: {:?}", text, start, e);
            prop_assert!(e.reported <= e.end);
            prop_assert!(e.reported >= start, "{} from {}: {:?}", text, start, e);
            prop_assert_eq!(p(&period.to_string()), period);
        } else {
            // Only over-precise fractions may be refused by this strategy.
            prop_assert_eq!(err(&text), PeriodError::TooPrecise, "{}", text);
        }
    }

    #[test]
    fn start_is_never_moved_by_zero_day_arithmetic(
        start in anchor_strategy(),
        tz in prop::sample::select(ZONES.to_vec()),
        hundredths in 1u32..100,
    ) {
        let text = format!("0.{hundredths:02}D");
        let e = p(&text).end_from(start, tz).expect("an end");
        prop_assert!(e.end > start, "{} from {}", text, start);
        prop_assert!(e.end - start <= Duration::hours(25));
    }
}

#[test]
fn tiny_day_fractions_tile_across_a_spring_forward_gap() {
    // 0.01D is 14.4 minutes. Measured as elapsed time from the last whole day,
    // 0.99D would land after the start of the 23-hour day's end, so the next
    // boundary would come before the previous one. Scaled by the real day
    // length, boundaries always increase.
    let anchor = local(Berlin, "2024-03-30 12:00:00");
    let period = p("0.01D");
    let mut previous = period.window(anchor, Berlin, 0).expect("window 0");
    for k in 1..300 {
        let w = period.window(anchor, Berlin, k).expect("window");
        assert_eq!(previous.end.end, w.start, "window {k}");
        assert!(
            w.start < w.end.end,
            "window {k} is empty or inverted: {w:?}"
        );
        previous = w;
    }
    // Window 100 starts exactly one local day after the anchor (23 real hours).
    let w100 = period.window(anchor, Berlin, 100).expect("window 100");
    assert_eq!(w100.start - anchor, Duration::hours(23));
}

#[test]
fn round_up_keeps_an_end_that_is_already_on_a_boundary() {
    let tz = chrono_tz::UTC;
    let day: Period = "1D_U".parse().unwrap();
    let end = day.end_from(utc("2023-10-10 00:00:00"), tz).unwrap();
    assert_eq!(end.end, utc("2023-10-11 00:00:00"));
    assert_eq!(end.reported, utc("2023-10-10 23:59:59"));
    let later = day.end_from(utc("2023-10-10 00:00:01"), tz).unwrap();
    assert_eq!(later.end, utc("2023-10-12 00:00:00"));
    let month: Period = "1M_U".parse().unwrap();
    let anchor = utc("2023-10-01 00:00:00");
    let windows: Vec<_> = (0..3)
        .map(|k| month.window(anchor, tz, k).unwrap())
        .map(|w| (w.start, w.end.end))
        .collect();
    assert_eq!(
        windows,
        vec![
            (utc("2023-10-01 00:00:00"), utc("2023-11-01 00:00:00")),
            (utc("2023-11-01 00:00:00"), utc("2023-12-01 00:00:00")),
            (utc("2023-12-01 00:00:00"), utc("2024-01-01 00:00:00")),
        ]
    );
}
