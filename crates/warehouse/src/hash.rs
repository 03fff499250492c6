//! A fixed hash of bytes, the same on every run and machine (unlike std's
//! hashers): fingerprints that are stored and compared across runs use it.

use std::hash::Hasher;

/// A fixed 64-bit hash of bytes (FNV-1a with a final avalanche): the same on
/// every run and machine, unlike std's hashers.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.write(bytes);
    h.finish()
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        // Final avalanche (from SplitMix64): FNV's low bits alone mix poorly.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_spread() {
        let bucket_of = |s: &str, n: u64| hash64(s.as_bytes()) % n;
        assert_eq!(hash64(b"abc"), hash64(b"abc"));
        assert_ne!(hash64(b"abc"), hash64(b"abd"));
        // 31 check characters × many prefixes fill 8 buckets about evenly.
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            counts[bucket_of(&format!("913306{i:011}"), 8) as usize] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "uneven buckets: {counts:?}");
        }
    }
}
