//! Compact encodings for what the Redis relay stores and sends.
//!
//! Host id sets (a campaign's targets and the hosts online at its start) are stored as sorted
//! ids, each as the LEB128 varint of its difference from the previous one: ids handed out in
//! sequence cost about one byte each, so 100,000 targets take about 100 KB.

use flotilla_engine::HostId;

/// Encodes sorted, distinct ids. Unsorted input is sorted first.
pub fn encode_ids(ids: &[HostId]) -> Vec<u8> {
    let mut sorted: Vec<u64> = ids.iter().map(|h| h.0).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::with_capacity(sorted.len() + 8);
    let mut previous = 0u64;
    for id in sorted {
        let mut delta = id - previous;
        previous = id;
        loop {
            let byte = (delta & 0x7f) as u8;
            delta >>= 7;
            if delta == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// Decodes what [`encode_ids`] wrote; `None` if the bytes are truncated or overflow.
pub fn decode_ids(bytes: &[u8]) -> Option<Vec<HostId>> {
    let mut ids = Vec::with_capacity(bytes.len());
    let mut previous = 0u64;
    let mut delta = 0u64;
    let mut shift = 0u32;
    for &byte in bytes {
        if shift >= 64 {
            return None;
        }
        delta |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            previous = previous.checked_add(delta)?;
            ids.push(HostId(previous));
            delta = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    (shift == 0).then_some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_sparse_dense_and_empty_sets() {
        for ids in [
            vec![],
            vec![HostId(1)],
            (1..=1000).map(HostId).collect::<Vec<_>>(),
            vec![HostId(3), HostId(200), HostId(1 << 40), HostId(u64::MAX)],
        ] {
            assert_eq!(decode_ids(&encode_ids(&ids)).unwrap(), ids);
        }
    }

    #[test]
    fn sorts_and_dedups_and_stays_compact() {
        let ids = [HostId(5), HostId(2), HostId(5), HostId(3)];
        assert_eq!(
            decode_ids(&encode_ids(&ids)).unwrap(),
            vec![HostId(2), HostId(3), HostId(5)]
        );
        let dense: Vec<HostId> = (1..=100_000).map(HostId).collect();
        assert_eq!(encode_ids(&dense).len(), 100_000);
    }

    #[test]
    fn rejects_truncated_input() {
        let mut bytes = encode_ids(&[HostId(300)]);
        bytes.pop();
        assert_eq!(decode_ids(&bytes), None);
    }
}
