//! Achievement definitions: their fields, the valid combinations of policies,
//! the editing rule and the status of a definition at an instant.
//!
//! Owns: `AchievementDraft` (what a client sends, unvalidated), `AchievementRules`
//! (the validated part that decides where progress lands), `Achievement` (a
//! stored definition) and `AchievementPatch` (a partial update). Pure: no I/O,
//! never reads the clock.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::error::FieldError;
use super::ids::{AchievementId, CampaignId};
use super::period::{Period, PeriodEnd};

/// Longest accepted achievement name, title and description.
pub const MAX_NAME_LEN: usize = 1000;
pub const MAX_TITLE_LEN: usize = 1000;
pub const MAX_DESCRIPTION_LEN: usize = 10_000;
/// The largest `allowedLatenessSeconds`: 100 Julian years. Beyond it a bound
/// means nothing a loyalty program could want, and instants stay in range.
pub const MAX_LATENESS_SECS: u64 = 3_155_760_000;

/// The largest accepted target or delta: far below `Decimal::MAX`, so that
/// sums of many events stay exact.
pub fn max_amount() -> Decimal {
    Decimal::from(100_000_000_000_000_000_000u128)
}

/// If and how an achievement recurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RecurrencePolicy {
    /// One-time.
    #[default]
    NoRecurrence,
    /// Resets when its period ends.
    OnExpiration,
    /// Restarts as soon as the target is reached; overshoot carries over.
    OnCompletion,
}

impl RecurrencePolicy {
    pub const ALL: [RecurrencePolicy; 3] = [
        RecurrencePolicy::NoRecurrence,
        RecurrencePolicy::OnExpiration,
        RecurrencePolicy::OnCompletion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecurrencePolicy::NoRecurrence => "no_recurrence",
            RecurrencePolicy::OnExpiration => "on_expiration",
            RecurrencePolicy::OnCompletion => "on_completion",
        }
    }

    pub fn parse(s: &str) -> Option<RecurrencePolicy> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// When an achievement's periods start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ActivationPolicy {
    /// At the customer's first progress.
    #[default]
    UserAction,
    /// On a schedule shared by all customers, anchored at `fixedStartDate`.
    FixedSchedule,
}

impl ActivationPolicy {
    pub const ALL: [ActivationPolicy; 2] = [
        ActivationPolicy::UserAction,
        ActivationPolicy::FixedSchedule,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActivationPolicy::UserAction => "user_action",
            ActivationPolicy::FixedSchedule => "fixed_schedule",
        }
    }

    pub fn parse(s: &str) -> Option<ActivationPolicy> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The status of a definition (Talon.One v1 values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DefinitionStatus {
    NotStarted,
    InProgress,
    Expired,
}

impl DefinitionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DefinitionStatus::NotStarted => "not_started",
            DefinitionStatus::InProgress => "inprogress",
            DefinitionStatus::Expired => "expired",
        }
    }
}

/// Everything a client gives to create an achievement, not yet validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AchievementDraft {
    pub name: String,
    pub title: String,
    pub description: String,
    pub target: Decimal,
    pub period: Option<String>,
    pub recurrence_policy: RecurrencePolicy,
    pub activation_policy: ActivationPolicy,
    pub fixed_start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub allow_rollback_after_completion: bool,
    pub end_progress_on_target: bool,
    /// `allowedLatenessSeconds`: `None` = no bound on lateness.
    pub allowed_lateness_secs: Option<u64>,
}

/// The validated rules of an achievement: what decides where progress lands.
#[derive(Debug, Clone, PartialEq)]
pub struct AchievementRules {
    pub target: Decimal,
    pub period: Option<Period>,
    pub recurrence: RecurrencePolicy,
    pub activation: ActivationPolicy,
    pub fixed_start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub allow_rollback_after_completion: bool,
    pub end_progress_on_target: bool,
    /// How long after a period ends an event dated inside it is still
    /// accepted, in seconds; `None` = no bound (SPEC §3).
    pub allowed_lateness_secs: Option<u64>,
}

/// The bounds of an iteration that opens at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub start: DateTime<Utc>,
    pub end: Option<PeriodEnd>,
}

/// A stored achievement definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Achievement {
    pub id: AchievementId,
    pub campaign_id: CampaignId,
    pub created: DateTime<Utc>,
    pub name: String,
    pub title: String,
    pub description: String,
    pub rules: AchievementRules,
}

/// A partial update. `Some(None)` clears an optional field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AchievementPatch {
    pub name: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub target: Option<Decimal>,
    pub period: Option<Option<String>>,
    pub recurrence_policy: Option<RecurrencePolicy>,
    pub activation_policy: Option<ActivationPolicy>,
    pub fixed_start_date: Option<Option<DateTime<Utc>>>,
    pub end_date: Option<Option<DateTime<Utc>>>,
    pub allow_rollback_after_completion: Option<bool>,
    pub end_progress_on_target: Option<bool>,
    /// Editable at any time: a rule about arrival, not about progress.
    pub allowed_lateness_secs: Option<Option<u64>>,
}

/// `^[a-zA-Z]\w+$` with ASCII word characters.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_text(
    errors: &mut Vec<FieldError>,
    pointer: &str,
    value: &str,
    max: usize,
    required: bool,
) {
    if required && value.trim().is_empty() {
        errors.push(FieldError::new(pointer, "must not be empty"));
    } else if value.chars().count() > max {
        errors.push(FieldError::new(
            pointer,
            format!("must be at most {max} characters"),
        ));
    }
}

/// Checks an amount (target or delta): positive and not absurdly large.
pub fn check_amount(pointer: &str, value: Decimal) -> Result<(), FieldError> {
    if value <= Decimal::ZERO {
        Err(FieldError::new(pointer, "must be greater than zero"))
    } else if value > max_amount() {
        Err(FieldError::new(
            pointer,
            format!("must be at most {}", max_amount()),
        ))
    } else {
        Ok(())
    }
}

impl AchievementDraft {
    /// Validates every field and every combination; returns all problems found.
    pub fn validate(&self) -> Result<AchievementRules, Vec<FieldError>> {
        use ActivationPolicy::*;
        use RecurrencePolicy::*;
        let mut errors = Vec::new();
        if self.name.chars().count() > MAX_NAME_LEN {
            errors.push(FieldError::new(
                "/name",
                format!("must be at most {MAX_NAME_LEN} characters"),
            ));
        } else if !valid_name(&self.name) {
            errors.push(FieldError::new(
                "/name",
                "must match ^[a-zA-Z]\\w+$: a letter, then at least one letter, digit or underscore",
            ));
        }
        check_text(&mut errors, "/title", &self.title, MAX_TITLE_LEN, true);
        check_text(
            &mut errors,
            "/description",
            &self.description,
            MAX_DESCRIPTION_LEN,
            false,
        );
        if let Err(e) = check_amount("/target", self.target) {
            errors.push(e);
        }
        let period = match self.period.as_deref().map(str::parse::<Period>) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                errors.push(FieldError::new("/period", e.to_string()));
                None
            }
            None => None,
        };
        let (recurrence, activation) = (self.recurrence_policy, self.activation_policy);
        let period_required = matches!(
            (activation, recurrence),
            (UserAction, NoRecurrence) | (UserAction, OnExpiration) | (FixedSchedule, OnExpiration)
        );
        if period_required && self.period.is_none() {
            errors.push(FieldError::new(
                "/period",
                format!(
                    "period is required for {} achievements with recurrencePolicy {}",
                    activation.as_str(),
                    recurrence.as_str()
                ),
            ));
        }
        match (activation, self.fixed_start_date) {
            (FixedSchedule, None) => errors.push(FieldError::new(
                "/fixedStartDate",
                "fixedStartDate is required when activationPolicy is fixed_schedule",
            )),
            (UserAction, Some(_)) => errors.push(FieldError::new(
                "/fixedStartDate",
                "fixedStartDate is only allowed when activationPolicy is fixed_schedule",
            )),
            _ => {}
        }
        if activation == FixedSchedule
            && recurrence == NoRecurrence
            && self.period.is_none()
            && self.end_date.is_none()
        {
            errors.push(FieldError::new(
                "/endDate",
                "a one-time fixed_schedule achievement needs a period or an endDate",
            ));
        }
        if let (Some(start), Some(end)) = (self.fixed_start_date, self.end_date) {
            if end <= start {
                errors.push(FieldError::new(
                    "/endDate",
                    "endDate must be after fixedStartDate",
                ));
            }
        }
        if self.end_progress_on_target && recurrence == OnCompletion {
            errors.push(FieldError::new(
                "/endProgressOnTarget",
                "endProgressOnTarget is only allowed with recurrencePolicy no_recurrence or on_expiration",
            ));
        }
        if self.allow_rollback_after_completion && recurrence == OnCompletion {
            errors.push(FieldError::new(
                "/allowRollbackAfterCompletion",
                "allowRollbackAfterCompletion is only allowed with recurrencePolicy no_recurrence or on_expiration",
            ));
        }
        if self
            .allowed_lateness_secs
            .is_some_and(|s| s > MAX_LATENESS_SECS)
        {
            errors.push(FieldError::new(
                "/allowedLatenessSeconds",
                format!("must be at most {MAX_LATENESS_SECS} (100 years)"),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(AchievementRules {
            target: self.target,
            period,
            recurrence,
            activation,
            fixed_start_date: self.fixed_start_date,
            end_date: self.end_date,
            allow_rollback_after_completion: self.allow_rollback_after_completion,
            end_progress_on_target: self.end_progress_on_target,
            allowed_lateness_secs: self.allowed_lateness_secs,
        })
    }
}

impl AchievementRules {
    /// Whether a period that ends at `end` is closed to an event arriving at
    /// `now` (SPEC §3): never without a bound; with a bound of `L` seconds
    /// once `now >= end + L`, so 0 closes a period as soon as it ends. The
    /// lateness window is half-open, like periods.
    pub fn closed_to_arrival(&self, end: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.allowed_lateness_secs.is_some_and(|secs| {
            i64::try_from(secs)
                .ok()
                .and_then(chrono::Duration::try_seconds)
                .and_then(|l| end.checked_add_signed(l))
                .is_some_and(|until| now >= until)
        })
    }

    /// The instant from which nobody can make progress any more: `endDate`, or
    /// for a one-time fixed schedule with a period, the end of its only window
    /// when that comes earlier.
    pub fn effective_end(&self, tz: Tz) -> Option<DateTime<Utc>> {
        let single_window_end = match (self.activation, self.recurrence, self.period.as_ref()) {
            (ActivationPolicy::FixedSchedule, RecurrencePolicy::NoRecurrence, Some(p)) => self
                .fixed_start_date
                .and_then(|anchor| p.window(anchor, tz, 0))
                .map(|w| w.end.end),
            _ => None,
        };
        match (single_window_end, self.end_date) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Talon.One's status of the definition at `now`.
    pub fn definition_status(&self, tz: Tz, now: DateTime<Utc>) -> DefinitionStatus {
        if self.fixed_start_date.is_some_and(|s| now < s) {
            DefinitionStatus::NotStarted
        } else if self.effective_end(tz).is_some_and(|e| now >= e) {
            DefinitionStatus::Expired
        } else {
            DefinitionStatus::InProgress
        }
    }

    /// Whether progress at `t` is inside the achievement's schedule.
    pub fn accepts_progress_at(&self, tz: Tz, t: DateTime<Utc>) -> bool {
        self.fixed_start_date.is_none_or(|s| t >= s) && self.effective_end(tz).is_none_or(|e| t < e)
    }

    /// The bounds of a new iteration that opens with progress at `t`: from `t`
    /// to `t + period` (user action) or to the end of the schedule window that
    /// contains `t` (fixed schedule), cut at `endDate`. `None` only when the
    /// dates leave the supported range.
    pub fn open_bounds(&self, tz: Tz, t: DateTime<Utc>) -> Option<Bounds> {
        let end = match (self.activation, self.period.as_ref()) {
            (_, None) => None,
            (ActivationPolicy::UserAction, Some(p)) => Some(p.end_from(t, tz)?),
            (ActivationPolicy::FixedSchedule, Some(p)) => {
                let anchor = self.fixed_start_date?;
                Some(p.window_containing(anchor, tz, t)?.end)
            }
        };
        let end = match (end, self.end_date) {
            (Some(e), Some(cut)) if cut < e.end => Some(PeriodEnd::exact(cut)),
            (None, Some(cut)) => Some(PeriodEnd::exact(cut)),
            (e, _) => e,
        };
        Some(Bounds { start: t, end })
    }
}

impl Achievement {
    /// The draft this definition was made from, for merging with a patch.
    pub fn to_draft(&self) -> AchievementDraft {
        let r = &self.rules;
        AchievementDraft {
            name: self.name.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            target: r.target,
            period: r.period.as_ref().map(Period::to_string),
            recurrence_policy: r.recurrence,
            activation_policy: r.activation,
            fixed_start_date: r.fixed_start_date,
            end_date: r.end_date,
            allow_rollback_after_completion: r.allow_rollback_after_completion,
            end_progress_on_target: r.end_progress_on_target,
            allowed_lateness_secs: r.allowed_lateness_secs,
        }
    }

    /// Applies a partial update. `locked` is true while the campaign is running
    /// or once any customer has progress: then only `title`, `description`
    /// and `allowedLatenessSeconds` may change. `name` never changes. Values equal to the current ones are
    /// not changes.
    pub fn patched(
        &self,
        patch: &AchievementPatch,
        locked: bool,
    ) -> Result<Achievement, Vec<FieldError>> {
        let current = self.to_draft();
        let mut next = current.clone();
        let mut errors = Vec::new();
        if let Some(name) = &patch.name {
            if *name != current.name {
                errors.push(FieldError::new(
                    "/name",
                    "name cannot be changed after the achievement is created",
                ));
            }
        }
        if let Some(v) = &patch.title {
            next.title = v.clone();
        }
        if let Some(v) = &patch.description {
            next.description = v.clone();
        }
        if let Some(v) = patch.allowed_lateness_secs {
            next.allowed_lateness_secs = v;
        }
        // A period is compared by meaning, not spelling: `1.50h` is `1.5h`.
        let patch_period = patch.period.as_ref().map(|p| {
            p.as_ref().map(|text| {
                text.parse::<Period>()
                    .map_or_else(|_| text.clone(), |p| p.to_string())
            })
        });
        macro_rules! rule_field {
            ($field:ident, $pointer:literal) => {
                rule_field!(patch.$field, $field, $pointer)
            };
            ($value:expr, $field:ident, $pointer:literal) => {
                if let Some(v) = &$value {
                    if *v != current.$field {
                        if locked {
                            errors.push(FieldError::new(
                                $pointer,
                                concat!(
                                    "cannot change ",
                                    $pointer,
                                    " while the campaign is running or once customers have progress; only title, description and allowedLatenessSeconds can change"
                                ),
                            ));
                        }
                        next.$field = v.clone();
                    }
                }
            };
        }
        rule_field!(target, "/target");
        rule_field!(patch_period, period, "/period");
        rule_field!(recurrence_policy, "/recurrencePolicy");
        rule_field!(activation_policy, "/activationPolicy");
        rule_field!(fixed_start_date, "/fixedStartDate");
        rule_field!(end_date, "/endDate");
        rule_field!(
            allow_rollback_after_completion,
            "/allowRollbackAfterCompletion"
        );
        rule_field!(end_progress_on_target, "/endProgressOnTarget");
        if !errors.is_empty() {
            return Err(errors);
        }
        let rules = next.validate()?;
        Ok(Achievement {
            title: next.title,
            description: next.description,
            rules,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests;
