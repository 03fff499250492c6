//! `unit_bucket(text, n)`: a stable hash of a text into `0..n`.
//!
//! The checks after loading group every version of the units a batch touches.
//! On a first load that is the whole table, and a hash aggregate over it holds
//! every group in memory at once. Split by `unit_bucket(unit, n) = i`, each
//! query holds one n-th of the groups, and a unit (with all its periods) is
//! always in one bucket, so per-bucket answers add up to the whole answer
//! (grace partitioning, as hash joins do when they spill).

use std::hash::Hasher;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray, UInt64Array};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};

/// The function's name in SQL.
pub const NAME: &str = "unit_bucket";

/// The bucket of one text: FNV-1a (fixed, so the same on every run and machine).
pub fn bucket_of(s: &str, n: u64) -> u64 {
    hash64(s.as_bytes()) % n.max(1)
}

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

/// The UDF: `unit_bucket(varchar, bigint) -> bigint unsigned`; null text → null.
pub fn udf() -> ScalarUDF {
    create_udf(
        NAME,
        vec![DataType::Utf8, DataType::Int64],
        DataType::UInt64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let n = match &args[1] {
                ColumnarValue::Scalar(ScalarValue::Int64(Some(n))) if *n > 0 => *n as u64,
                _ => {
                    return Err(DataFusionError::Execution(format!(
                        "{NAME}: the bucket count must be a positive constant"
                    )))
                }
            };
            let rows = args[0].clone().into_array(1)?;
            let text = arrow::compute::cast(&rows, &DataType::Utf8)?;
            let text = text
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8");
            let out: UInt64Array = (0..text.len())
                .map(|i| text.is_valid(i).then(|| bucket_of(text.value(i), n)))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket_of("91330600MA2BXXXX1X", 1), 0);
        assert_eq!(bucket_of("abc", 7), bucket_of("abc", 7));
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
