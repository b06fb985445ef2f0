//! Partitions: which of a fixed number of partitions a customer belongs to,
//! and which shard runs a partition.
//!
//! Owns: the partition hash (SPEC §6: FNV-1a-32 of `applicationId "/"
//! integrationId`, modulo the partition count) and the partition → shard
//! rule. Both must never change for a data directory's life: its log and
//! snapshots are organised by partition.

use super::log::PartitionId;
use crate::domain::{ApplicationId, CustomerId};

/// Partitions of a new data directory, unless configured.
pub const DEFAULT_PARTITIONS: u32 = 256;

/// FNV-1a, 32 bits.
fn fnv1a32(bytes: impl IntoIterator<Item = u8>, mut hash: u32) -> u32 {
    for b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

const FNV32_OFFSET: u32 = 0x811c_9dc5;

/// The decimal digits of a number, without allocating.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The partition of a customer of an application.
pub fn partition_of(app: ApplicationId, customer: &CustomerId, partitions: u32) -> PartitionId {
    let mut digits = [0u8; 20];
    let hash = fnv1a32(
        decimal(app.0, &mut digits)
            .iter()
            .copied()
            .chain(std::iter::once(b'/'))
            .chain(customer.as_str().bytes()),
        FNV32_OFFSET,
    );
    PartitionId(hash % partitions.max(1))
}

/// The shard that runs a partition.
pub fn shard_of(partition: PartitionId, shards: usize) -> usize {
    partition.0 as usize % shards.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(s: &str) -> CustomerId {
        CustomerId::parse(s, "/integrationId").unwrap()
    }

    #[test]
    fn the_hash_is_fnv1a32_of_the_application_slash_customer_text() {
        // FNV-1a-32 reference values: "" → 0x811c9dc5, "a" → 0xe40c292c.
        assert_eq!(fnv1a32(*b"", FNV32_OFFSET), 0x811c_9dc5);
        assert_eq!(fnv1a32(*b"a", FNV32_OFFSET), 0xe40c_292c);
        assert_eq!(fnv1a32(*b"foobar", FNV32_OFFSET), 0xbf9c_f968);
        let text = fnv1a32(*b"12/jane", FNV32_OFFSET);
        assert_eq!(
            partition_of(ApplicationId(12), &cid("jane"), 256),
            PartitionId(text % 256)
        );
        assert_eq!(
            partition_of(ApplicationId(12), &cid("jane"), 7),
            PartitionId(text % 7)
        );
    }

    #[test]
    fn decimal_digits() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(1_234_567, &mut buf), b"1234567");
        assert_eq!(decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }

    #[test]
    fn customers_spread_over_partitions_and_shards() {
        let mut counts = [0usize; 16];
        for i in 0..16_000 {
            let p = partition_of(ApplicationId(1), &cid(&format!("customer-{i}")), 16);
            counts[p.0 as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (700..1300).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(shard_of(PartitionId(13), 4), 1);
        assert_eq!(shard_of(PartitionId(13), 0), 0);
    }
}
