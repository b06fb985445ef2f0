//! Progress events, rollbacks and reads through the integration API, one file
//! per concern. Most tests start from `helpers::seeded`: a server with one
//! application, its integration key and one enabled campaign.

mod batches;
mod duplicates;
mod effects;
mod input;
mod journey;
mod reads;
mod rollbacks;
mod schedules;
mod tenancy;
mod timing;
