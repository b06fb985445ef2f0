//! The management API through real HTTP, one file per resource:
//! authentication and routing, applications, API keys, campaigns,
//! achievements (creation, validation, the editing rule, deletion), the CSV
//! export and a customer's progress across an application's achievements.

mod achievements;
mod api_keys;
mod applications;
mod auth;
mod campaigns;
mod editing;
mod exports;
mod lifecycle;
mod progress;
mod validation;
