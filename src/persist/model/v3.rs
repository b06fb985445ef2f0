//! On-disk types of version 3: partitions. A shard log's record names the
//! partition it belongs to (several partitions share one file log), and a
//! snapshot's chunk of pairs names its partition. The records and pairs
//! themselves are those of versions 1 and 2.

use serde::{Deserialize, Serialize};

use super::v1::PairV1;
use super::v2::{ShardRecordRefV2, ShardRecordV2};

/// A record of a partition's stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionRecordV3 {
    pub partition: u32,
    pub record: ShardRecordV2,
}

/// The borrowed twin of [`PartitionRecordV3`]: same bytes.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionRecordRefV3<'a> {
    pub partition: u32,
    pub record: ShardRecordRefV2<'a>,
}

/// A chunk of one partition's pairs in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkV3 {
    pub partition: u32,
    pub pairs: Vec<PairV1>,
}
