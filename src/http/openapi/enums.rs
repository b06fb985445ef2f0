//! The string enums of the API as schemas. The handlers write them with the
//! domain's own `as_str()`; each schema lists exactly those strings.

use utoipa::openapi::{schema::Schema, ObjectBuilder, RefOr, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::catalog::CampaignState;
use crate::domain::happened::EntryType;
use crate::domain::{
    ActivationPolicy, DefinitionStatus, Outcome, ProgressStatus, Reason, RecurrencePolicy,
};
use crate::feed::webhooks::DeliveryStatus;

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident = $description:literal [$($value:expr),+ $(,)?]) => {
        $(#[$doc])*
        pub struct $name;

        impl $name {
            /// The values, as the handlers write them.
            pub fn values() -> Vec<&'static str> {
                vec![$($value),+]
            }
        }

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .enum_values(Some($name::values()))
                    .into()
            }
        }

        impl ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                // `RecurrencePolicyName` → `RecurrencePolicy`.
                let name = stringify!($name);
                std::borrow::Cow::Borrowed(name.strip_suffix("Name").unwrap_or(name))
            }
        }
    };
}

string_enum!(RecurrencePolicyName = "What happens when an iteration ends or completes" [
    RecurrencePolicy::NoRecurrence.as_str(),
    RecurrencePolicy::OnExpiration.as_str(),
    RecurrencePolicy::OnCompletion.as_str(),
]);

string_enum!(ActivationPolicyName = "When a customer's iteration starts" [
    ActivationPolicy::UserAction.as_str(),
    ActivationPolicy::FixedSchedule.as_str(),
]);

string_enum!(AchievementStatusName = "Talon.One v1's achievement status" [
    DefinitionStatus::NotStarted.as_str(),
    DefinitionStatus::InProgress.as_str(),
    DefinitionStatus::Expired.as_str(),
]);

string_enum!(ProgressStatusName = "An iteration's status" [
    ProgressStatus::InProgress.as_str(),
    ProgressStatus::Completed.as_str(),
    ProgressStatus::Expired.as_str(),
    ProgressStatus::NotStarted.as_str(),
]);

string_enum!(EntryStatusName = "`scheduled` before the achievement's fixedStartDate, else `active`" [
    "active", "scheduled",
]);

string_enum!(CampaignStateName = "Whether the campaign takes events" [
    CampaignState::Enabled.as_str(),
    CampaignState::Disabled.as_str(),
]);

string_enum!(OutcomeName = "What became of an event or rollback" [
    Outcome::Applied.as_str(),
    Outcome::Duplicate.as_str(),
    Outcome::Rejected.as_str(),
]);

string_enum!(ReasonName = "Why an event or rollback was rejected" [
    Reason::CampaignNotRunning.as_str(),
    Reason::OutsideSchedule.as_str(),
    Reason::FutureTimestamp.as_str(),
    Reason::Late.as_str(),
    Reason::AlreadyCompleted.as_str(),
    Reason::Expired.as_str(),
    Reason::UnknownEvent.as_str(),
    Reason::AlreadyRolledBack.as_str(),
    Reason::RollbackNotAllowed.as_str(),
    Reason::PeriodEnded.as_str(),
]);

string_enum!(EffectTypeName = "Talon.One's effect type" [
    "startAchievementProgress",
    "increaseAchievementProgress",
    "rollbackIncreasedAchievementProgress",
]);

string_enum!(EventTypeName = "What happened to a customer's achievement" [
    EntryType::Started.as_str(),
    EntryType::Completed.as_str(),
    EntryType::Expired.as_str(),
    EntryType::CompletionRolledBack.as_str(),
]);

string_enum!(DeliveryStatusName = "How a webhook delivery attempt ended" [
    DeliveryStatus::Delivered.as_str(),
    DeliveryStatus::Failed.as_str(),
    DeliveryStatus::GaveUp.as_str(),
    DeliveryStatus::Disabled.as_str(),
]);

string_enum!(RejectedName = "A batch item that could never apply"["rejected"]);
