//! What the engine tells the achievement event feed: each transition of an
//! iteration with the log position of the record that made it, erasures,
//! and barriers.
//!
//! Owns: `FeedEntry`, `FeedMessage` and the `FeedSink` trait that the feed
//! (`crate::feed`) implements. The engine sends in the order it appends to
//! the log, from the thread that appended, right after the append; the sink
//! must write an entry only once its record is durable (it asks the log),
//! never block the sender, and answer a barrier once everything sent before
//! it is stored. Live traffic, timers and replay send alike, so a restart
//! re-sends what a crash may have cut and the sink drops what it has (the
//! position says).

use std::sync::Arc;

use rust_decimal::Decimal;
use tokio::sync::oneshot;

use super::catalog::AchievementEntry;
use super::log::{Log, PartitionId, Position};
use crate::domain::{AchievementId, ApplicationId, CampaignId, CustomerId, EventId, Transition};

/// One feed entry as the engine made it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    pub partition: PartitionId,
    /// The position of the record that made it, in its partition's stream.
    pub position: Position,
    /// Its place among the entries of that record.
    pub index: u32,
    pub application: ApplicationId,
    pub campaign: CampaignId,
    pub achievement: AchievementId,
    pub achievement_name: String,
    pub customer: CustomerId,
    pub target: Decimal,
    /// The progress event or rollback that caused it, if one did.
    pub event_id: Option<EventId>,
    pub transition: Transition,
}

/// What the engine sends.
#[derive(Debug)]
pub enum FeedMessage {
    /// Entries of records appended (or replayed), in log order per partition.
    Entries(Vec<FeedEntry>),
    /// A customer's data was erased from an application by the record at
    /// `position`: the customer's earlier entries must go.
    Erased {
        partition: PartitionId,
        position: Position,
        application: ApplicationId,
        customer: CustomerId,
    },
    /// Answer once everything sent before is stored durably.
    Barrier(oneshot::Sender<()>),
}

/// Where feed messages go.
pub trait FeedSink: Send + Sync {
    fn send(&self, message: FeedMessage);

    /// The log entries' records are appended to, once the engine has one
    /// (what the sink asks about durability). Before it, everything sent
    /// is replayed from the log, so already durable.
    fn log_attached(&self, log: Arc<dyn Log>);
}

/// Turns a step's transitions into entries (their position is set once the
/// record is appended).
pub fn entries(
    entry: &AchievementEntry,
    partition: PartitionId,
    customer: &CustomerId,
    event_id: Option<&EventId>,
    transitions: Vec<Transition>,
) -> Vec<FeedEntry> {
    transitions
        .into_iter()
        .enumerate()
        .map(|(i, transition)| FeedEntry {
            partition,
            position: Position(0),
            index: i as u32,
            application: entry.application_id,
            campaign: entry.achievement.campaign_id,
            achievement: entry.achievement.id,
            achievement_name: entry.achievement.name.clone(),
            customer: customer.clone(),
            target: entry.achievement.rules.target,
            event_id: event_id.cloned(),
            transition,
        })
        .collect()
}

/// Sends entries of the record at `position`, if a sink is attached.
pub fn send_entries(
    sink: Option<&Arc<dyn FeedSink>>,
    position: Position,
    mut list: Vec<FeedEntry>,
) {
    let Some(sink) = sink else {
        return;
    };
    if list.is_empty() {
        return;
    }
    for e in &mut list {
        e.position = position;
    }
    sink.send(FeedMessage::Entries(list));
}
