//! The shape of MessagePack input, measured before any decoder sees it.
//!
//! `rmp-serde` decodes recursively, and so do the `Deserialize` impls it drives
//! (`serde_json::Value` above all). Its own nesting limit (1024) is too deep for a
//! 2 MiB thread stack — a tokio worker's — in a debug build, where each level costs a
//! few KiB: a 1000-deep array in a job argument or a return would abort the process
//! instead of being dropped. And each decoded value costs up to ~100 bytes of memory
//! however few bytes it took on the wire (an empty array is one byte), so a message of
//! [`crate::envelope::MAX_ENVELOPE_BYTES`] one-byte values would need most of a
//! gigabyte.
//!
//! [`check`] walks the bytes once, without recursion or allocation beyond one counter
//! per open container, and refuses input nested deeper than [`MAX_DEPTH`] or made of
//! more than [`MAX_VALUES`] values. [`crate::envelope`] runs it on every envelope and
//! every body before decoding, and on every body it seals, so a sender learns that a
//! message would be refused rather than having it dropped by its receiver.

/// The deepest nesting of arrays and maps accepted (the message's own map is level
/// one). The same limit `serde_json` puts on JSON: legitimate messages — a job's
/// arguments, a state return, grains — nest a dozen levels, and the deepest value the
/// CLI can type (see [`crate::args`]) fits with room to spare.
pub const MAX_DEPTH: usize = 128;

/// The most values (scalars, arrays and maps, map keys included) one message may hold.
/// A message of returns near [`crate::envelope::MAX_ENVELOPE_BYTES`] holds about one
/// value per eight bytes, about a million; twice that bounds a decoded message to
/// roughly 200 MiB.
pub const MAX_VALUES: usize = 2 * 1024 * 1024;

/// Why MessagePack input was refused before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// Arrays and maps nest deeper than the limit.
    #[error("nested more than {max} levels deep")]
    TooDeep { max: usize },
    /// More values than the limit.
    #[error("more than {max} values")]
    TooManyValues { max: usize },
    /// The input ends inside a value, or a container claims more items than bytes
    /// remain.
    #[error("truncated at byte {at}")]
    Truncated { at: usize },
    /// The marker byte 0xc1, which MessagePack reserves and never writes.
    #[error("reserved marker 0xc1 at byte {at}")]
    Reserved { at: usize },
}

/// Limits for [`check_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_depth: usize,
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: MAX_DEPTH, max_values: MAX_VALUES }
    }
}

/// Checks the first MessagePack value in `bytes` against [`MAX_DEPTH`] and
/// [`MAX_VALUES`]. Bytes after that value are not looked at (the decoder ignores them
/// too).
pub fn check(bytes: &[u8]) -> Result<(), ShapeError> {
    check_with(bytes, Limits::default())
}

/// [`check`] with other limits.
pub fn check_with(bytes: &[u8], limits: Limits) -> Result<(), ShapeError> {
    // Items still to read in each open array or map (a map's pairs count twice),
    // innermost last. Never longer than `max_depth`.
    let mut open: Vec<u64> = Vec::new();
    let mut values = 0usize;
    let mut pos = 0usize;
    loop {
        let at = pos;
        let marker = *bytes.get(pos).ok_or(ShapeError::Truncated { at })?;
        pos += 1;
        values += 1;
        if values > limits.max_values {
            return Err(ShapeError::TooManyValues { max: limits.max_values });
        }
        let be = |pos: usize, n: usize| -> Result<u64, ShapeError> {
            let b = bytes.get(pos..pos + n).ok_or(ShapeError::Truncated { at: pos })?;
            Ok(b.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x)))
        };
        // (bytes of header and payload after the marker, items inside)
        let (skip, items): (u64, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
            0xc1 => return Err(ShapeError::Reserved { at }),
            // bin 8/16/32 and str 8/16/32: a length, then that many bytes.
            0xc4 | 0xd9 => (1 + be(pos, 1)?, 0),
            0xc5 | 0xda => (2 + be(pos, 2)?, 0),
            0xc6 | 0xdb => (4 + be(pos, 4)?, 0),
            // ext 8/16/32: a length, a type byte, then the data.
            0xc7 => (1 + 1 + be(pos, 1)?, 0),
            0xc8 => (2 + 1 + be(pos, 2)?, 0),
            0xc9 => (4 + 1 + be(pos, 4)?, 0),
            // float 32/64, uint and int 8..64.
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            // fixext 1/2/4/8/16: a type byte, then the data.
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, be(pos, 2)?),
            0xdd => (4, be(pos, 4)?),
            0xde => (2, 2 * be(pos, 2)?),
            0xdf => (4, 2 * be(pos, 4)?),
        };
        pos = usize::try_from(skip)
            .ok()
            .and_then(|s| pos.checked_add(s))
            .filter(|&end| end <= bytes.len())
            .ok_or(ShapeError::Truncated { at: bytes.len() })?;
        if items > 0 {
            // Every item takes at least one byte: a container cannot claim more.
            if items > (bytes.len() - pos) as u64 {
                return Err(ShapeError::Truncated { at: bytes.len() });
            }
            if open.len() >= limits.max_depth {
                return Err(ShapeError::TooDeep { max: limits.max_depth });
            }
            open.push(items);
            continue;
        }
        // A complete value: it finishes its container, which may finish its own.
        loop {
            match open.last_mut() {
                None => return Ok(()),
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                    open.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;
    use serde_json::json;

    fn nested_arrays(depth: usize) -> Vec<u8> {
        let mut b = vec![0x91; depth];
        b.push(0xc0);
        b
    }

    #[test]
    fn well_formed_values_pass_and_their_values_are_counted() {
        for v in [json!(null), json!(1), json!(-300), json!(1.5), json!("x"), json!([]), json!({})] {
            check(&rmp_serde::to_vec(&v).unwrap()).unwrap();
        }
        let v = json!({"a": [1, 2, {"b": "c"}], "d": {"e": [[], {}]}});
        let bytes = rmp_serde::to_vec_named(&v).unwrap();
        check(&bytes).unwrap();
        // 1 map, 2 keys, [1, 2, {b: c}] = 6, {e: [[], {}]} = 5.
        let limits = |max_values| Limits { max_depth: MAX_DEPTH, max_values };
        check_with(&bytes, limits(14)).unwrap();
        assert_eq!(check_with(&bytes, limits(13)), Err(ShapeError::TooManyValues { max: 13 }));
    }

    #[test]
    fn nesting_is_measured_exactly() {
        check(&nested_arrays(MAX_DEPTH)).unwrap();
        assert_eq!(check(&nested_arrays(MAX_DEPTH + 1)), Err(ShapeError::TooDeep { max: MAX_DEPTH }));
        // Depth, not size: siblings do not add up.
        let wide = json!([[[1]], [[2]], [[3]], {"a": [4]}]);
        let limits = Limits { max_depth: 3, max_values: MAX_VALUES };
        check_with(&rmp_serde::to_vec(&wide).unwrap(), limits).unwrap();
        let limits = Limits { max_depth: 2, max_values: MAX_VALUES };
        assert!(check_with(&rmp_serde::to_vec(&wide).unwrap(), limits).is_err());
    }

    #[test]
    fn a_hundred_thousand_nested_arrays_are_refused_without_recursion() {
        // Checked on a small stack: the walk itself must not recurse.
        let bytes = nested_arrays(100_000);
        let r = std::thread::Builder::new().stack_size(64 * 1024).spawn(move || check(&bytes)).unwrap().join();
        assert_eq!(r.unwrap(), Err(ShapeError::TooDeep { max: MAX_DEPTH }));
    }

    #[test]
    fn every_value_ends_where_the_decoder_says() {
        // One of each marker family inside an array, then a trailing sentinel the walk
        // must not reach: if it misjudged any length, the count or the end would be off.
        let v = json!([
            0,
            127,
            -1,
            -32,
            200,
            60000,
            4_000_000_000u64,
            u64::MAX,
            -100,
            -30000,
            -2_000_000_000i64,
            i64::MIN,
            1.5,
            "",
            "short",
            "x".repeat(40),
            "y".repeat(300),
            "z".repeat(70_000),
            true,
            false,
            null,
            vec![0; 20],
            (0..20).map(|i| (i.to_string(), json!(i))).collect::<crate::Map>()
        ]);
        let mut bytes = rmp_serde::to_vec(&v).unwrap();
        check(&bytes).unwrap();
        bytes.extend_from_slice(&[0xc1, 0xc1]);
        check(&bytes).unwrap();
        let mut f32_bin_ext = vec![0x95, 0xca, 0, 0, 0, 0, 0xc4, 2, 1, 2, 0xd4, 1, 9, 0xc7, 1, 5, 9, 0xd8, 1];
        f32_bin_ext.extend_from_slice(&[7; 16]);
        check(&f32_bin_ext).unwrap();
        for cut in 0..f32_bin_ext.len() {
            assert!(matches!(check(&f32_bin_ext[..cut]), Err(ShapeError::Truncated { .. })), "cut at {cut}");
        }
        let _: Value = rmp_serde::from_slice(&rmp_serde::to_vec(&v).unwrap()).unwrap();
    }

    #[test]
    fn impossible_lengths_and_reserved_markers_are_refused() {
        // An array32 claiming four billion items in a few bytes.
        assert!(matches!(check(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]), Err(ShapeError::Truncated { .. })));
        assert!(matches!(check(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']), Err(ShapeError::Truncated { .. })));
        assert_eq!(check(&[0x91, 0xc1]), Err(ShapeError::Reserved { at: 1 }));
        assert_eq!(check(&[]), Err(ShapeError::Truncated { at: 0 }));
    }
}
