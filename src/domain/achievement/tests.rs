use super::*;

use chrono::{Duration, NaiveDateTime};
use chrono_tz::Europe::Berlin;
use chrono_tz::UTC as UTC_TZ;

use crate::domain::period::PeriodEnd;

// ---------------------------------------------------------------- helpers

fn utc(text: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("bad test time {text:?}: {e}"))
        .and_utc()
}

fn dec(text: &str) -> Decimal {
    text.parse().expect("decimal")
}

/// A valid one-time user-action draft: the default policies with a period.
fn draft() -> AchievementDraft {
    AchievementDraft {
        name: "weekly_buyer".into(),
        title: "Weekly buyer".into(),
        description: "Buy something every week".into(),
        target: dec("10"),
        period: Some("1W".into()),
        ..AchievementDraft::default()
    }
}

/// A valid fixed-schedule draft anchored at 2023-10-10.
fn fixed(recurrence: RecurrencePolicy, period: Option<&str>) -> AchievementDraft {
    AchievementDraft {
        activation_policy: ActivationPolicy::FixedSchedule,
        recurrence_policy: recurrence,
        fixed_start_date: Some(utc("2023-10-10 00:00:00")),
        period: period.map(str::to_string),
        ..draft()
    }
}

fn rules(d: &AchievementDraft) -> AchievementRules {
    d.validate()
        .unwrap_or_else(|e| panic!("draft should be valid: {e:?}\n{d:#?}"))
}

fn pointers(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.pointer.as_str()).collect()
}

/// The pointers of the errors of an invalid draft.
fn invalid(d: &AchievementDraft) -> Vec<String> {
    match d.validate() {
        Ok(r) => panic!("draft should be invalid, got {r:?}\n{d:#?}"),
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(!e.message.is_empty(), "{e:?} has no message");
            }
            errors.into_iter().map(|e| e.pointer).collect()
        }
    }
}

fn assert_single(d: &AchievementDraft, pointer: &str) {
    assert_eq!(invalid(d), vec![pointer.to_string()], "{d:#?}");
}

fn achievement(d: &AchievementDraft) -> Achievement {
    Achievement {
        id: AchievementId(7),
        campaign_id: CampaignId(3),
        created: utc("2023-09-01 12:00:00"),
        name: d.name.clone(),
        title: d.title.clone(),
        description: d.description.clone(),
        rules: rules(d),
    }
}

fn patch_errors(a: &Achievement, patch: &AchievementPatch, locked: bool) -> Vec<String> {
    match a.patched(patch, locked) {
        Ok(next) => panic!("patch should be refused, got {next:?}"),
        Err(errors) => errors.into_iter().map(|e| e.pointer).collect(),
    }
}

fn patch_ok(a: &Achievement, patch: &AchievementPatch, locked: bool) -> Achievement {
    a.patched(patch, locked)
        .unwrap_or_else(|e| panic!("patch should apply: {e:?}\n{patch:#?}"))
}

// ------------------------------------------------------------ validation

#[test]
fn a_valid_draft_becomes_rules() {
    let r = rules(&draft());
    assert_eq!(
        r,
        AchievementRules {
            target: dec("10"),
            period: Some("1W".parse().unwrap()),
            recurrence: RecurrencePolicy::NoRecurrence,
            activation: ActivationPolicy::UserAction,
            fixed_start_date: None,
            end_date: None,
            allow_rollback_after_completion: false,
            end_progress_on_target: false,
            allowed_lateness_secs: None,
        }
    );
}

#[test]
fn defaults_are_one_time_user_action() {
    let d = AchievementDraft::default();
    assert_eq!(d.recurrence_policy, RecurrencePolicy::NoRecurrence);
    assert_eq!(d.activation_policy, ActivationPolicy::UserAction);
    assert!(!d.allow_rollback_after_completion);
    assert!(!d.end_progress_on_target);
}

#[test]
fn policy_names_round_trip() {
    for p in RecurrencePolicy::ALL {
        assert_eq!(RecurrencePolicy::parse(p.as_str()), Some(p));
    }
    for p in ActivationPolicy::ALL {
        assert_eq!(ActivationPolicy::parse(p.as_str()), Some(p));
    }
    assert_eq!(RecurrencePolicy::parse("NoRecurrence"), None);
    assert_eq!(ActivationPolicy::parse(""), None);
    assert_eq!(DefinitionStatus::InProgress.as_str(), "inprogress");
    assert_eq!(DefinitionStatus::NotStarted.as_str(), "not_started");
    assert_eq!(DefinitionStatus::Expired.as_str(), "expired");
}

#[test]
fn name_must_match_the_pattern() {
    for good in [
        "ab",
        "a1",
        "A_",
        "weekly_buyer",
        "Buy3Times",
        "x__9",
        "aZ09_",
    ] {
        assert!(valid_name(good), "{good}");
        rules(&AchievementDraft {
            name: good.into(),
            ..draft()
        });
    }
    for bad in [
        "", "a", "Z", "1abc", "_abc", "ab-c", "ab c", " ab", "ab ", "aé", "éa", "ab.c", "ab\n",
    ] {
        assert!(!valid_name(bad), "{bad:?}");
        let d = AchievementDraft {
            name: bad.into(),
            ..draft()
        };
        assert_single(&d, "/name");
    }
}

#[test]
fn name_is_at_most_1000_characters() {
    let longest = format!("a{}", "b".repeat(999));
    rules(&AchievementDraft {
        name: longest,
        ..draft()
    });
    let d = AchievementDraft {
        name: "a".repeat(1001),
        ..draft()
    };
    let errors = d.validate().unwrap_err();
    assert_eq!(pointers(&errors), ["/name"]);
    assert!(errors[0].message.contains("1000"), "{errors:?}");
}

#[test]
fn title_is_required_and_bounded() {
    for empty in ["", "   ", "\t\n"] {
        assert_single(
            &AchievementDraft {
                title: empty.into(),
                ..draft()
            },
            "/title",
        );
    }
    assert_single(
        &AchievementDraft {
            title: "t".repeat(MAX_TITLE_LEN + 1),
            ..draft()
        },
        "/title",
    );
    // Counted in characters, not bytes.
    rules(&AchievementDraft {
        title: "é".repeat(MAX_TITLE_LEN),
        ..draft()
    });
}

#[test]
fn description_may_be_empty_but_is_bounded() {
    rules(&AchievementDraft {
        description: String::new(),
        ..draft()
    });
    rules(&AchievementDraft {
        description: "d".repeat(MAX_DESCRIPTION_LEN),
        ..draft()
    });
    assert_single(
        &AchievementDraft {
            description: "d".repeat(MAX_DESCRIPTION_LEN + 1),
            ..draft()
        },
        "/description",
    );
}

#[test]
fn target_is_positive_and_bounded() {
    for bad in ["0", "0.000", "-1", "-0.5"] {
        assert_single(
            &AchievementDraft {
                target: dec(bad),
                ..draft()
            },
            "/target",
        );
    }
    let too_big = max_amount() + dec("0.1");
    assert_single(
        &AchievementDraft {
            target: too_big,
            ..draft()
        },
        "/target",
    );
    for good in ["0.0001", "0.3", "1", "1000000"] {
        assert_eq!(
            rules(&AchievementDraft {
                target: dec(good),
                ..draft()
            })
            .target,
            dec(good)
        );
    }
    assert_eq!(
        rules(&AchievementDraft {
            target: max_amount(),
            ..draft()
        })
        .target,
        max_amount()
    );
    assert!(check_amount("/delta", dec("0")).is_err_and(|e| e.pointer == "/delta"));
    assert!(check_amount("/delta", dec("1.5")).is_ok());
}

#[test]
fn period_is_required_per_policy_combination() {
    use ActivationPolicy::*;
    use RecurrencePolicy::*;
    let start = Some(utc("2023-10-10 00:00:00"));
    let end = Some(utc("2024-10-10 00:00:00"));
    // (activation, recurrence, endDate) -> is a period required?
    let cases = [
        (UserAction, NoRecurrence, None, true),
        (UserAction, OnExpiration, None, true),
        (UserAction, OnCompletion, None, false),
        (FixedSchedule, OnExpiration, None, true),
        (FixedSchedule, OnCompletion, None, false),
        // One-time fixed schedule: a period or an endDate.
        (FixedSchedule, NoRecurrence, end, false),
        (UserAction, NoRecurrence, end, true),
        (UserAction, OnExpiration, end, true),
        (FixedSchedule, OnExpiration, end, true),
    ];
    for (activation, recurrence, end_date, required) in cases {
        let d = AchievementDraft {
            activation_policy: activation,
            recurrence_policy: recurrence,
            fixed_start_date: if activation == FixedSchedule {
                start
            } else {
                None
            },
            end_date,
            period: None,
            ..draft()
        };
        let label = format!("{activation:?} {recurrence:?} endDate={end_date:?}");
        if required {
            let errors = d.validate().unwrap_err();
            assert_eq!(pointers(&errors), ["/period"], "{label}");
            assert!(errors[0].message.contains(activation.as_str()), "{label}");
            assert!(errors[0].message.contains(recurrence.as_str()), "{label}");
        } else {
            assert_eq!(rules(&d).period, None, "{label}");
        }
        // With a period every combination is fine.
        rules(&AchievementDraft {
            period: Some("1M".into()),
            ..d
        });
    }
}

#[test]
fn a_bad_period_string_names_the_period() {
    for (text, fragment) in [
        ("1X", "unknown period unit"),
        ("", "empty"),
        ("1.5M", "whole amount"),
        ("1h_U", "_U"),
        ("0D", "greater than zero"),
    ] {
        let d = AchievementDraft {
            period: Some(text.into()),
            ..draft()
        };
        let errors = d.validate().unwrap_err();
        // Reported once, not again as "missing".
        assert_eq!(pointers(&errors), ["/period"], "{text}");
        assert!(errors[0].message.contains(fragment), "{text}: {errors:?}");
    }
    // Also for a policy where the period is optional.
    let d = AchievementDraft {
        recurrence_policy: RecurrencePolicy::OnCompletion,
        period: Some("3X".into()),
        ..draft()
    };
    assert_single(&d, "/period");
}

#[test]
fn fixed_start_date_is_required_for_and_only_allowed_with_fixed_schedule() {
    let d = AchievementDraft {
        fixed_start_date: None,
        ..fixed(RecurrencePolicy::OnExpiration, Some("1M"))
    };
    let errors = d.validate().unwrap_err();
    assert_eq!(pointers(&errors), ["/fixedStartDate"]);
    assert!(errors[0].message.contains("required"));

    let d = AchievementDraft {
        fixed_start_date: Some(utc("2023-10-10 00:00:00")),
        ..draft()
    };
    let errors = d.validate().unwrap_err();
    assert_eq!(pointers(&errors), ["/fixedStartDate"]);
    assert!(errors[0].message.contains("only allowed"));
}

#[test]
fn one_time_fixed_schedule_needs_a_period_or_an_end_date() {
    let d = fixed(RecurrencePolicy::NoRecurrence, None);
    assert_single(&d, "/endDate");
    rules(&fixed(RecurrencePolicy::NoRecurrence, Some("1M")));
    rules(&AchievementDraft {
        end_date: Some(utc("2023-12-01 00:00:00")),
        ..fixed(RecurrencePolicy::NoRecurrence, None)
    });
    rules(&AchievementDraft {
        end_date: Some(utc("2023-12-01 00:00:00")),
        ..fixed(RecurrencePolicy::NoRecurrence, Some("1M"))
    });
}

#[test]
fn end_date_must_come_after_fixed_start_date() {
    for end in [
        "2023-10-09 23:59:59",
        "2023-10-10 00:00:00",
        "2020-01-01 00:00:00",
    ] {
        let d = AchievementDraft {
            end_date: Some(utc(end)),
            ..fixed(RecurrencePolicy::OnExpiration, Some("1M"))
        };
        let errors = d.validate().unwrap_err();
        assert_eq!(pointers(&errors), ["/endDate"], "{end}");
        assert!(errors[0].message.contains("fixedStartDate"), "{end}");
    }
    rules(&AchievementDraft {
        end_date: Some(utc("2023-10-10 00:00:01")),
        ..fixed(RecurrencePolicy::OnExpiration, Some("1M"))
    });
    // With user action, any endDate is accepted.
    rules(&AchievementDraft {
        end_date: Some(utc("2020-01-01 00:00:00")),
        ..draft()
    });
}

#[test]
fn completion_flags_are_refused_with_on_completion() {
    let base = AchievementDraft {
        recurrence_policy: RecurrencePolicy::OnCompletion,
        ..draft()
    };
    assert_single(
        &AchievementDraft {
            end_progress_on_target: true,
            ..base.clone()
        },
        "/endProgressOnTarget",
    );
    assert_single(
        &AchievementDraft {
            allow_rollback_after_completion: true,
            ..base.clone()
        },
        "/allowRollbackAfterCompletion",
    );
    assert_eq!(
        invalid(&AchievementDraft {
            allow_rollback_after_completion: true,
            end_progress_on_target: true,
            ..base
        }),
        ["/endProgressOnTarget", "/allowRollbackAfterCompletion"]
    );
    for recurrence in [
        RecurrencePolicy::NoRecurrence,
        RecurrencePolicy::OnExpiration,
    ] {
        let r = rules(&AchievementDraft {
            recurrence_policy: recurrence,
            allow_rollback_after_completion: true,
            end_progress_on_target: true,
            ..draft()
        });
        assert!(r.allow_rollback_after_completion && r.end_progress_on_target);
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let d = AchievementDraft {
        name: "1".into(),
        title: String::new(),
        target: dec("0"),
        period: None,
        fixed_start_date: Some(utc("2023-10-10 00:00:00")),
        ..draft()
    };
    assert_eq!(
        invalid(&d),
        ["/name", "/title", "/target", "/period", "/fixedStartDate"]
    );
}

// --------------------------------------------- bounds, ends and statuses

#[test]
fn user_action_bounds_follow_the_period() {
    let r = rules(&AchievementDraft {
        period: Some("1D".into()),
        ..draft()
    });
    let t = utc("2023-10-10 09:30:45");
    assert_eq!(r.effective_end(UTC_TZ), None);
    assert_eq!(
        r.open_bounds(UTC_TZ, t),
        Some(Bounds {
            start: t,
            end: Some(PeriodEnd::exact(utc("2023-10-11 09:30:45"))),
        })
    );
    // Never expires as a definition.
    assert_eq!(
        r.definition_status(UTC_TZ, utc("2100-01-01 00:00:00")),
        DefinitionStatus::InProgress
    );
    assert!(r.accepts_progress_at(UTC_TZ, utc("1990-01-01 00:00:00")));

    // SPEC §4: on_expiration 3M_U.
    let r = rules(&AchievementDraft {
        recurrence_policy: RecurrencePolicy::OnExpiration,
        period: Some("3M_U".into()),
        ..draft()
    });
    assert_eq!(
        r.open_bounds(UTC_TZ, t).unwrap().end,
        Some(PeriodEnd {
            end: utc("2024-02-01 00:00:00"),
            reported: utc("2024-01-31 23:59:59"),
        })
    );
}

#[test]
fn user_action_bounds_are_cut_at_end_date() {
    let end_date = utc("2023-10-15 00:00:00");
    let r = rules(&AchievementDraft {
        end_date: Some(end_date),
        ..draft() // 1W
    });
    assert_eq!(r.effective_end(UTC_TZ), Some(end_date));
    // A week from the 10th would end on the 17th: cut at the 15th.
    let t = utc("2023-10-10 09:30:45");
    assert_eq!(
        r.open_bounds(UTC_TZ, t),
        Some(Bounds {
            start: t,
            end: Some(PeriodEnd::exact(end_date)),
        })
    );
    // A week from the 1st ends on the 8th: not cut.
    let t = utc("2023-10-01 00:00:00");
    assert_eq!(
        r.open_bounds(UTC_TZ, t).unwrap().end,
        Some(PeriodEnd::exact(utc("2023-10-08 00:00:00")))
    );
    assert_eq!(
        r.definition_status(UTC_TZ, end_date - Duration::seconds(1)),
        DefinitionStatus::InProgress
    );
    assert_eq!(
        r.definition_status(UTC_TZ, end_date),
        DefinitionStatus::Expired
    );
    assert!(r.accepts_progress_at(UTC_TZ, end_date - Duration::nanoseconds(1)));
    assert!(!r.accepts_progress_at(UTC_TZ, end_date));
}

#[test]
fn a_cut_keeps_round_up_reporting_only_when_it_does_not_shorten() {
    // 1D_U from 10 Oct 09:30 ends at 12 Oct 00:00, reported 11 Oct 23:59:59.
    let t = utc("2023-10-10 09:30:00");
    let with_end = |end: &str| {
        rules(&AchievementDraft {
            period: Some("1D_U".into()),
            end_date: Some(utc(end)),
            ..draft()
        })
        .open_bounds(UTC_TZ, t)
        .unwrap()
        .end
    };
    assert_eq!(
        with_end("2023-10-12 00:00:00"),
        Some(PeriodEnd {
            end: utc("2023-10-12 00:00:00"),
            reported: utc("2023-10-11 23:59:59"),
        })
    );
    assert_eq!(
        with_end("2023-10-11 12:00:00"),
        Some(PeriodEnd::exact(utc("2023-10-11 12:00:00")))
    );
    assert_eq!(
        with_end("2024-01-01 00:00:00"),
        Some(PeriodEnd {
            end: utc("2023-10-12 00:00:00"),
            reported: utc("2023-10-11 23:59:59"),
        })
    );
}

#[test]
fn fixed_schedule_bounds_end_with_the_window() {
    // SPEC §4: fixed 1M anchored 2023-10-10, first progress 2023-10-18 10:20.
    let r = rules(&fixed(RecurrencePolicy::NoRecurrence, Some("1M")));
    let t = utc("2023-10-18 10:20:00");
    assert_eq!(
        r.open_bounds(UTC_TZ, t),
        Some(Bounds {
            start: t,
            end: Some(PeriodEnd::exact(utc("2023-11-10 00:00:00"))),
        })
    );
    // SPEC §4: on_expiration 2Y anchored 2023-01-01.
    let r = rules(&AchievementDraft {
        fixed_start_date: Some(utc("2023-01-01 00:00:00")),
        ..fixed(RecurrencePolicy::OnExpiration, Some("2Y"))
    });
    let t = utc("2023-08-12 14:15:02");
    assert_eq!(
        r.open_bounds(UTC_TZ, t).unwrap(),
        Bounds {
            start: t,
            end: Some(PeriodEnd::exact(utc("2025-01-01 00:00:00"))),
        }
    );
    // A later window of a recurring schedule.
    let t = utc("2026-03-01 00:00:00");
    assert_eq!(
        r.open_bounds(UTC_TZ, t).unwrap().end,
        Some(PeriodEnd::exact(utc("2027-01-01 00:00:00")))
    );
    assert_eq!(r.effective_end(UTC_TZ), None);
}

#[test]
fn fixed_schedule_windows_follow_the_application_zone() {
    // Weekly windows anchored Monday 00:00 Berlin time end on Monday 00:00
    // Berlin time, also across the spring change.
    let r = rules(&AchievementDraft {
        fixed_start_date: Some(utc("2024-03-17 23:00:00")), // Mon 18 Mar 00:00 CET
        ..fixed(RecurrencePolicy::OnExpiration, Some("1W"))
    });
    let t = utc("2024-03-28 12:00:00");
    assert_eq!(
        r.open_bounds(Berlin, t).unwrap().end,
        Some(PeriodEnd::exact(utc("2024-03-31 22:00:00"))) // Mon 1 Apr 00:00 CEST
    );
    assert_eq!(
        r.open_bounds(UTC_TZ, t).unwrap().end,
        Some(PeriodEnd::exact(utc("2024-03-31 23:00:00")))
    );
}

#[test]
fn fixed_schedule_bounds_are_cut_at_end_date() {
    let r = rules(&AchievementDraft {
        end_date: Some(utc("2023-12-20 00:00:00")),
        ..fixed(RecurrencePolicy::OnExpiration, Some("1M"))
    });
    assert_eq!(
        r.open_bounds(UTC_TZ, utc("2023-11-15 00:00:00"))
            .unwrap()
            .end,
        Some(PeriodEnd::exact(utc("2023-12-10 00:00:00")))
    );
    assert_eq!(
        r.open_bounds(UTC_TZ, utc("2023-12-15 00:00:00"))
            .unwrap()
            .end,
        Some(PeriodEnd::exact(utc("2023-12-20 00:00:00")))
    );
    assert_eq!(r.effective_end(UTC_TZ), Some(utc("2023-12-20 00:00:00")));
}

#[test]
fn one_time_fixed_schedule_has_a_single_window() {
    let anchor = utc("2023-10-10 00:00:00");
    // Period only: anchor + P.
    let r = rules(&fixed(RecurrencePolicy::NoRecurrence, Some("1M")));
    assert_eq!(r.effective_end(UTC_TZ), Some(utc("2023-11-10 00:00:00")));
    // Both: the earlier of the two.
    let r = rules(&AchievementDraft {
        end_date: Some(utc("2024-01-01 00:00:00")),
        ..fixed(RecurrencePolicy::NoRecurrence, Some("1M"))
    });
    assert_eq!(r.effective_end(UTC_TZ), Some(utc("2023-11-10 00:00:00")));
    let r = rules(&AchievementDraft {
        end_date: Some(utc("2023-10-20 00:00:00")),
        ..fixed(RecurrencePolicy::NoRecurrence, Some("1M"))
    });
    assert_eq!(r.effective_end(UTC_TZ), Some(utc("2023-10-20 00:00:00")));
    assert_eq!(
        r.open_bounds(UTC_TZ, utc("2023-10-12 00:00:00"))
            .unwrap()
            .end,
        Some(PeriodEnd::exact(utc("2023-10-20 00:00:00")))
    );
    // endDate only.
    let r = rules(&AchievementDraft {
        end_date: Some(utc("2023-12-24 00:00:00")),
        ..fixed(RecurrencePolicy::NoRecurrence, None)
    });
    assert_eq!(r.effective_end(UTC_TZ), Some(utc("2023-12-24 00:00:00")));
    assert_eq!(
        r.open_bounds(UTC_TZ, utc("2023-11-01 00:00:00"))
            .unwrap()
            .end,
        Some(PeriodEnd::exact(utc("2023-12-24 00:00:00")))
    );
    // A rounded single window: its exclusive end is the effective end.
    let r = rules(&fixed(RecurrencePolicy::NoRecurrence, Some("1M_U")));
    assert_eq!(r.effective_end(UTC_TZ), Some(utc("2023-12-01 00:00:00")));

    // Statuses and acceptance around the window.
    let r = rules(&fixed(RecurrencePolicy::NoRecurrence, Some("1M")));
    let end = utc("2023-11-10 00:00:00");
    let status = |t: DateTime<Utc>| r.definition_status(UTC_TZ, t);
    assert_eq!(
        status(anchor - Duration::seconds(1)),
        DefinitionStatus::NotStarted
    );
    assert_eq!(status(anchor), DefinitionStatus::InProgress);
    assert_eq!(
        status(end - Duration::seconds(1)),
        DefinitionStatus::InProgress
    );
    assert_eq!(status(end), DefinitionStatus::Expired);
    assert!(!r.accepts_progress_at(UTC_TZ, anchor - Duration::nanoseconds(1)));
    assert!(r.accepts_progress_at(UTC_TZ, anchor));
    assert!(!r.accepts_progress_at(UTC_TZ, end));
}

#[test]
fn on_completion_without_period_never_ends() {
    let r = rules(&AchievementDraft {
        recurrence_policy: RecurrencePolicy::OnCompletion,
        period: None,
        ..draft()
    });
    let t = utc("2023-10-10 09:30:45");
    assert_eq!(r.effective_end(UTC_TZ), None);
    assert_eq!(
        r.open_bounds(UTC_TZ, t),
        Some(Bounds {
            start: t,
            end: None
        })
    );
    assert_eq!(
        r.definition_status(UTC_TZ, utc("2999-01-01 00:00:00")),
        DefinitionStatus::InProgress
    );
    // With an endDate, iterations stop there.
    let r = rules(&AchievementDraft {
        recurrence_policy: RecurrencePolicy::OnCompletion,
        period: None,
        end_date: Some(utc("2024-01-01 00:00:00")),
        ..draft()
    });
    assert_eq!(
        r.open_bounds(UTC_TZ, t).unwrap().end,
        Some(PeriodEnd::exact(utc("2024-01-01 00:00:00")))
    );
    // Fixed schedule without a period too.
    let r = rules(&fixed(RecurrencePolicy::OnCompletion, None));
    assert_eq!(r.open_bounds(UTC_TZ, t).unwrap().end, None);
    assert_eq!(
        r.definition_status(UTC_TZ, utc("2023-10-09 00:00:00")),
        DefinitionStatus::NotStarted
    );
    assert_eq!(
        r.definition_status(UTC_TZ, utc("2999-01-01 00:00:00")),
        DefinitionStatus::InProgress
    );
}

#[test]
fn on_completion_with_period_ends_each_iteration() {
    let r = rules(&AchievementDraft {
        recurrence_policy: RecurrencePolicy::OnCompletion,
        period: Some("1D".into()),
        ..draft()
    });
    let t = utc("2023-10-10 09:30:45");
    assert_eq!(
        r.open_bounds(UTC_TZ, t).unwrap().end,
        Some(PeriodEnd::exact(utc("2023-10-11 09:30:45")))
    );
}

// ---------------------------------------------------------------- editing

#[test]
fn to_draft_round_trips() {
    for d in [
        draft(),
        fixed(RecurrencePolicy::OnExpiration, Some("1.50h")),
        AchievementDraft {
            end_date: Some(utc("2024-01-01 00:00:00")),
            ..fixed(RecurrencePolicy::NoRecurrence, None)
        },
    ] {
        let a = achievement(&d);
        assert_eq!(rules(&a.to_draft()), a.rules);
        assert_eq!(a.to_draft().name, d.name);
    }
}

#[test]
fn locked_achievement_allows_title_and_description_only() {
    let a = achievement(&draft());
    let next = patch_ok(
        &a,
        &AchievementPatch {
            title: Some("New title".into()),
            description: Some(String::new()),
            ..AchievementPatch::default()
        },
        true,
    );
    assert_eq!(next.title, "New title");
    assert_eq!(next.description, "");
    assert_eq!(next.rules, a.rules);
    assert_eq!(
        (next.id, next.campaign_id, next.created, &next.name),
        (a.id, a.campaign_id, a.created, &a.name)
    );
    // The new title is still validated.
    let errors = patch_errors(
        &a,
        &AchievementPatch {
            title: Some(" ".into()),
            ..AchievementPatch::default()
        },
        true,
    );
    assert_eq!(errors, ["/title"]);
}

#[test]
fn locked_achievement_refuses_rule_changes_naming_the_field() {
    let a = achievement(&draft());
    let none = AchievementPatch::default;
    let cases: Vec<(AchievementPatch, &str)> = vec![
        (
            AchievementPatch {
                target: Some(dec("11")),
                ..none()
            },
            "/target",
        ),
        (
            AchievementPatch {
                period: Some(Some("2W".into())),
                ..none()
            },
            "/period",
        ),
        (
            AchievementPatch {
                period: Some(None),
                ..none()
            },
            "/period",
        ),
        (
            AchievementPatch {
                recurrence_policy: Some(RecurrencePolicy::OnExpiration),
                ..none()
            },
            "/recurrencePolicy",
        ),
        (
            AchievementPatch {
                activation_policy: Some(ActivationPolicy::FixedSchedule),
                ..none()
            },
            "/activationPolicy",
        ),
        (
            AchievementPatch {
                fixed_start_date: Some(Some(utc("2023-10-10 00:00:00"))),
                ..none()
            },
            "/fixedStartDate",
        ),
        (
            AchievementPatch {
                end_date: Some(Some(utc("2024-10-10 00:00:00"))),
                ..none()
            },
            "/endDate",
        ),
        (
            AchievementPatch {
                allow_rollback_after_completion: Some(true),
                ..none()
            },
            "/allowRollbackAfterCompletion",
        ),
        (
            AchievementPatch {
                end_progress_on_target: Some(true),
                ..none()
            },
            "/endProgressOnTarget",
        ),
    ];
    for (patch, pointer) in cases {
        let errors = a.patched(&patch, true).unwrap_err();
        assert_eq!(pointers(&errors), [pointer], "{patch:?}");
        assert!(errors[0].message.contains(pointer), "{errors:?}");
        assert!(errors[0]
            .message
            .contains("title, description and allowedLatenessSeconds"));
        // The same change is fine while unlocked.
        let next = patch.clone();
        if pointer != "/activationPolicy" && pointer != "/fixedStartDate" && pointer != "/period" {
            patch_ok(&a, &next, false);
        }
    }
    // Several at once: every field is named, with the allowed title ignored.
    let errors = patch_errors(
        &a,
        &AchievementPatch {
            title: Some("ok".into()),
            target: Some(dec("5")),
            end_date: Some(Some(utc("2024-10-10 00:00:00"))),
            ..none()
        },
        true,
    );
    assert_eq!(errors, ["/target", "/endDate"]);
}

#[test]
fn an_unchanged_value_is_not_a_change() {
    let d = AchievementDraft {
        period: Some("1.5h".into()),
        end_date: Some(utc("2024-10-10 00:00:00")),
        ..draft()
    };
    let a = achievement(&d);
    let same = AchievementPatch {
        name: Some(a.name.clone()),
        title: Some(a.title.clone()),
        description: Some(a.description.clone()),
        target: Some(dec("10.00")),
        period: Some(Some("1.5h".into())),
        recurrence_policy: Some(RecurrencePolicy::NoRecurrence),
        activation_policy: Some(ActivationPolicy::UserAction),
        fixed_start_date: Some(None),
        end_date: Some(Some(utc("2024-10-10 00:00:00"))),
        allow_rollback_after_completion: Some(false),
        end_progress_on_target: Some(false),
        allowed_lateness_secs: Some(None),
    };
    assert_eq!(patch_ok(&a, &same, true), a);
    // The same period spelled differently is the same period.
    for spelling in ["1.50h", "01.5h", "1.500h"] {
        let patch = AchievementPatch {
            period: Some(Some(spelling.into())),
            ..AchievementPatch::default()
        };
        assert_eq!(patch_ok(&a, &patch, true), a, "{spelling}");
    }
    // But a different length is a change.
    let patch = AchievementPatch {
        period: Some(Some("90m".into())),
        ..AchievementPatch::default()
    };
    assert_eq!(patch_errors(&a, &patch, true), ["/period"]);
}

#[test]
fn name_never_changes() {
    let a = achievement(&draft());
    for locked in [true, false] {
        let errors = patch_errors(
            &a,
            &AchievementPatch {
                name: Some("other_name".into()),
                ..AchievementPatch::default()
            },
            locked,
        );
        assert_eq!(errors, ["/name"], "locked={locked}");
    }
    // Together with an allowed change, the whole patch is refused.
    let result = a.patched(
        &AchievementPatch {
            name: Some("other_name".into()),
            title: Some("New".into()),
            ..AchievementPatch::default()
        },
        false,
    );
    assert_eq!(pointers(&result.unwrap_err()), ["/name"]);
}

#[test]
fn unlocked_changes_apply_and_are_revalidated() {
    let a = achievement(&draft());
    let next = patch_ok(
        &a,
        &AchievementPatch {
            target: Some(dec("25")),
            period: Some(Some("3M_U".into())),
            recurrence_policy: Some(RecurrencePolicy::OnExpiration),
            end_progress_on_target: Some(true),
            ..AchievementPatch::default()
        },
        false,
    );
    assert_eq!(next.rules.target, dec("25"));
    assert_eq!(next.rules.period, Some("3M_U".parse().unwrap()));
    assert_eq!(next.rules.recurrence, RecurrencePolicy::OnExpiration);
    assert!(next.rules.end_progress_on_target);
    assert_eq!(next.name, a.name);
    assert_eq!(next.id, a.id);

    // Switching to a fixed schedule with its start date.
    let next = patch_ok(
        &a,
        &AchievementPatch {
            activation_policy: Some(ActivationPolicy::FixedSchedule),
            fixed_start_date: Some(Some(utc("2023-10-10 00:00:00"))),
            ..AchievementPatch::default()
        },
        false,
    );
    assert_eq!(next.rules.activation, ActivationPolicy::FixedSchedule);

    let refused = |patch: AchievementPatch| patch_errors(&a, &patch, false);
    assert_eq!(
        refused(AchievementPatch {
            target: Some(dec("0")),
            ..AchievementPatch::default()
        }),
        ["/target"]
    );
    assert_eq!(
        refused(AchievementPatch {
            period: Some(None),
            ..AchievementPatch::default()
        }),
        ["/period"]
    );
    assert_eq!(
        refused(AchievementPatch {
            period: Some(Some("1.5M".into())),
            ..AchievementPatch::default()
        }),
        ["/period"]
    );
    assert_eq!(
        refused(AchievementPatch {
            activation_policy: Some(ActivationPolicy::FixedSchedule),
            ..AchievementPatch::default()
        }),
        ["/fixedStartDate"]
    );
    assert_eq!(
        refused(AchievementPatch {
            fixed_start_date: Some(Some(utc("2023-10-10 00:00:00"))),
            ..AchievementPatch::default()
        }),
        ["/fixedStartDate"]
    );
    assert_eq!(
        refused(AchievementPatch {
            recurrence_policy: Some(RecurrencePolicy::OnCompletion),
            allow_rollback_after_completion: Some(true),
            ..AchievementPatch::default()
        }),
        ["/allowRollbackAfterCompletion"]
    );
}

#[test]
fn unlocked_patch_can_clear_optional_fields() {
    let d = AchievementDraft {
        end_date: Some(utc("2024-10-10 00:00:00")),
        ..fixed(RecurrencePolicy::NoRecurrence, Some("1M"))
    };
    let a = achievement(&d);
    let next = patch_ok(
        &a,
        &AchievementPatch {
            end_date: Some(None),
            ..AchievementPatch::default()
        },
        false,
    );
    assert_eq!(next.rules.end_date, None);
    // Clearing both the period and the endDate of a one-time fixed schedule
    // leaves it without an end: refused.
    let errors = patch_errors(
        &a,
        &AchievementPatch {
            end_date: Some(None),
            period: Some(None),
            ..AchievementPatch::default()
        },
        false,
    );
    assert_eq!(errors, ["/endDate"]);
    // Locked: clearing is a change too.
    let errors = patch_errors(
        &a,
        &AchievementPatch {
            end_date: Some(None),
            ..AchievementPatch::default()
        },
        true,
    );
    assert_eq!(errors, ["/endDate"]);
}
