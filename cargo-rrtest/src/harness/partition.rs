//! Partitioning the selected tests for CI matrices.
//!
//! - `hash:M/N`: a test belongs to shard `fnv1a64(binary_id NUL name) % N + 1`.
//!   The hash is implemented here (FNV-1a, 64 bit), so shard membership is the
//!   same across machines, Rust versions and cargo-rrtest versions, and does not
//!   depend on which other tests exist.
//! - `count:M/N`: the sorted selected tests are dealt round-robin; shard M gets
//!   tests M, M+N, M+2N, ... (even shard sizes, but membership moves when tests
//!   are added).
//!
//! Partitioning applies to ignored tests too, so each test appears in exactly
//! one shard's report.

use std::fmt;
use std::str::FromStr;

/// A partition of the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// Stable hash of binary id and test name.
    Hash {
        /// 1-based shard.
        shard: u64,
        /// Number of shards.
        total: u64,
    },
    /// Round-robin over the sorted tests.
    Count {
        /// 1-based shard.
        shard: u64,
        /// Number of shards.
        total: u64,
    },
}

impl FromStr for Partition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err =
            || format!("invalid partition `{s}`: expected hash:M/N or count:M/N with 1 <= M <= N");
        let (kind, spec) = s.split_once(':').ok_or_else(err)?;
        let (m, n) = spec.split_once('/').ok_or_else(err)?;
        let shard: u64 = m.trim().parse().map_err(|_| err())?;
        let total: u64 = n.trim().parse().map_err(|_| err())?;
        if shard == 0 || total == 0 || shard > total {
            return Err(err());
        }
        match kind {
            "hash" => Ok(Partition::Hash { shard, total }),
            "count" => Ok(Partition::Count { shard, total }),
            _ => Err(err()),
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::Hash { shard, total } => write!(f, "hash:{shard}/{total}"),
            Partition::Count { shard, total } => write!(f, "count:{shard}/{total}"),
        }
    }
}

impl Partition {
    /// Whether the test at `index` (in the sorted selection) with this binary id
    /// and name belongs to this shard.
    pub fn contains(&self, index: usize, binary_id: &str, name: &str) -> bool {
        match *self {
            Partition::Hash { shard, total } => test_hash(binary_id, name) % total + 1 == shard,
            Partition::Count { shard, total } => (index as u64) % total + 1 == shard,
        }
    }
}

/// FNV-1a, 64 bit.
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A separator, so ("ab", "c") and ("a", "bc") differ.
            h ^= 0;
            h = h.wrapping_mul(PRIME);
        }
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h
}

/// The partition hash of a test.
pub fn test_hash(binary_id: &str, name: &str) -> u64 {
    fnv1a64(&[binary_id.as_bytes(), name.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(&[b""]), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(&[b"foobar"]), 0x85944171f73967e8);
        assert_ne!(test_hash("ab", "c"), test_hash("a", "bc"));
    }

    #[test]
    fn parses_and_displays() {
        assert_eq!(
            "hash:1/2".parse(),
            Ok(Partition::Hash { shard: 1, total: 2 })
        );
        assert_eq!(
            "count:3/3".parse::<Partition>().unwrap().to_string(),
            "count:3/3"
        );
        for bad in [
            "hash:0/2",
            "hash:3/2",
            "hash:1",
            "mod:1/2",
            "hash:a/b",
            "count:1/0",
        ] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_cover_every_test_once() {
        for total in 1..6 {
            for i in 0..200usize {
                let name = format!("mod{}::test_{i}", i % 7);
                for kind in ["hash", "count"] {
                    let hits = (1..=total)
                        .filter(|m| {
                            let p: Partition = format!("{kind}:{m}/{total}").parse().unwrap();
                            p.contains(i, "crate::it", &name)
                        })
                        .count();
                    assert_eq!(hits, 1);
                }
            }
        }
    }
}
