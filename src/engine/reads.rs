//! The engine's reads: a customer's progress (here or at the partition's
//! owner in a cluster) and the CSV export's keys and rows, partition by
//! partition. Reads never change a pair and never wait for the log.

use std::sync::Arc;

use super::*;

impl Engine {
    /// A customer's iterations (newest first, as of now) in each achievement.
    pub async fn customer_progress(
        &self,
        app: ApplicationId,
        customer: &CustomerId,
        entries: &[Arc<AchievementEntry>],
    ) -> Result<Vec<Vec<Iteration>>, EngineError> {
        let partition = self.partition_of(app, customer);
        if let Some(remote) = self.shared.remote() {
            let achievements = entries.iter().map(|e| e.achievement.id).collect();
            return remote
                .progress(partition, customer.clone(), achievements)
                .await;
        }
        let achievements: Vec<AchievementId> = entries.iter().map(|e| e.achievement.id).collect();
        self.local_progress(partition, customer, &achievements)
            .await
    }

    /// A customer's iterations as this node holds them (in a cluster, the
    /// owner of the customer's partition answers with this).
    pub async fn local_progress(
        &self,
        partition: PartitionId,
        customer: &CustomerId,
        achievements: &[AchievementId],
    ) -> Result<Vec<Vec<Iteration>>, EngineError> {
        self.shards[self.shard_of(partition)]
            .send(ReadCustomer {
                customer: customer.clone(),
                partition,
                achievements: achievements.to_vec(),
            })
            .await
            .map_err(shard_gone)?
    }

    /// The customers with progress in an achievement, per shard, sorted.
    pub async fn export_keys(
        &self,
        entry: &AchievementEntry,
    ) -> Result<Vec<Vec<CustomerId>>, EngineError> {
        let sends = self.shards.iter().map(|s| {
            s.send(ExportKeys {
                achievement: entry.achievement.id,
                partition: None,
            })
        });
        futures_util::future::join_all(sends)
            .await
            .into_iter()
            .map(|r| r.map_err(shard_gone))
            .collect()
    }

    /// Every customer's iterations in an achievement within one partition,
    /// sorted by customer (a cluster's export goes partition by partition,
    /// each answered by its owner).
    pub async fn export_partition(
        &self,
        p: PartitionId,
        entry: &AchievementEntry,
    ) -> Result<Vec<(CustomerId, Vec<Iteration>)>, EngineError> {
        if let Some(remote) = self.shared.remote() {
            return remote
                .export(p, entry.application_id, entry.achievement.id)
                .await;
        }
        self.local_export(p, entry.application_id, entry.achievement.id)
            .await
    }

    /// [`Engine::export_partition`] as this node holds the partition.
    pub async fn local_export(
        &self,
        p: PartitionId,
        application: ApplicationId,
        achievement: AchievementId,
    ) -> Result<Vec<(CustomerId, Vec<Iteration>)>, EngineError> {
        let shard = &self.shards[self.shard_of(p)];
        let customers = shard
            .send(ExportKeys {
                achievement,
                partition: Some(p),
            })
            .await
            .map_err(shard_gone)?;
        shard
            .send(ExportRows {
                application,
                achievement,
                customers,
            })
            .await
            .map_err(shard_gone)
    }

    /// The iterations of some customers of one shard (from `export_keys`).
    pub async fn export_rows(
        &self,
        shard: usize,
        entry: &AchievementEntry,
        customers: Vec<CustomerId>,
    ) -> Result<Vec<(CustomerId, Vec<Iteration>)>, EngineError> {
        self.shards[shard]
            .send(ExportRows {
                application: entry.application_id,
                achievement: entry.achievement.id,
                customers,
            })
            .await
            .map_err(shard_gone)
    }
}
