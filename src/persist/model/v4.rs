//! On-disk types of version 4: expiry records. A shard log's record may say
//! that time passed the end of some pairs' iterations (their owner's timers
//! fired), so replay expires them at the same point of the log. Pair and
//! erasure records are those of versions 1 and 2; snapshots are version 3's.

use serde::{Deserialize, Serialize};

use super::v1::{PairRecordRefV1, PairRecordV1, TimeV1};
use super::v2::EraseV2;
use super::{bad, ModelError};
use crate::domain::{AchievementId, CustomerId};
use crate::engine::log::{Expiry, Record};

/// Expired iterations: the time the timers fired at and the pairs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExpireV4 {
    pub at: TimeV1,
    /// (achievement id, customer integration id)
    pub pairs: Vec<(u64, String)>,
}

/// A record of a partition's stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum ShardRecordV4 {
    Pair(PairRecordV1),
    Erase(EraseV2),
    Expire(ExpireV4),
}

/// The borrowed twin of [`ShardRecordV4`]: same bytes.
#[derive(Debug, Clone, Serialize)]
pub enum ShardRecordRefV4<'a> {
    Pair(PairRecordRefV1<'a>),
    Erase(&'a EraseV2),
    Expire(&'a ExpireV4),
}

/// A record of a partition's stream, with its partition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionRecordV4 {
    pub partition: u32,
    pub record: ShardRecordV4,
}

/// The borrowed twin of [`PartitionRecordV4`]: same bytes.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionRecordRefV4<'a> {
    pub partition: u32,
    pub record: ShardRecordRefV4<'a>,
}

impl From<&Expiry> for ExpireV4 {
    fn from(e: &Expiry) -> Self {
        ExpireV4 {
            at: e.at.into(),
            pairs: e
                .pairs
                .iter()
                .map(|(a, c)| (a.0, c.as_str().to_string()))
                .collect(),
        }
    }
}

impl ExpireV4 {
    pub fn to_expiry(&self) -> Result<Expiry, ModelError> {
        Ok(Expiry {
            at: self.at.to_time()?,
            pairs: self
                .pairs
                .iter()
                .map(|(a, c)| {
                    CustomerId::parse(c, "/integrationId")
                        .map(|c| (AchievementId(*a), c))
                        .map_err(|e| bad(e.message))
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

impl ShardRecordV4 {
    pub fn to_record(&self) -> Result<Record, ModelError> {
        Ok(match self {
            ShardRecordV4::Pair(p) => Record::Pair(p.to_change()?),
            ShardRecordV4::Erase(e) => Record::Erase(e.to_erasure()?),
            ShardRecordV4::Expire(e) => Record::Expire(e.to_expiry()?),
        })
    }
}
