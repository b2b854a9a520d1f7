//! [`ConvertSummary`]: what one conversion run did, in the seed's stats vocabulary (reference
//! docs/convert.md: records read/written, bad records by type, bytes read/uncompressed/written).

use std::collections::BTreeMap;

use serde::Serialize;

use super::bad_record::BadRecordKind;

/// Counters of one or more conversion runs; [`ConvertSummary::merge`] adds another.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ConvertSummary {
    /// Records seen (including unreadable ones).
    pub records_read: u64,
    /// Records written to partition files.
    pub records_written: u64,
    /// Records rejected (sum of `bad_records_by_type`).
    pub bad_records: u64,
    /// Rejected records by [`BadRecordKind`] label (only non-zero entries).
    pub bad_records_by_type: BTreeMap<&'static str, u64>,
    /// Input bytes as stored (path + body as received, or line length).
    pub bytes_read: u64,
    /// Input bytes with bodies inflated.
    pub bytes_uncompressed: u64,
    /// Output bytes before compression: `len(id) + len(json) + 2` per record, as the seed counted.
    pub bytes_written: u64,
    /// Histograms converted to compact form (keyed: one per key).
    pub histograms_converted: u64,
    /// Histograms without a definition, dropped.
    pub unknown_histograms: u64,
    /// Histograms that did not validate, dropped (every mode but strict `reject`).
    pub histograms_dropped: u64,
    /// Of `histograms_converted`, laid out by their own parameters (no definitions needed).
    pub histograms_self_described: u64,
    /// Of `histograms_converted`, laid out by approximate (nearest) definitions.
    pub histograms_nearest: u64,
    /// Stored records with histograms, by how they were validated (`definitions`,
    /// `self_described`, `nearest`; only non-zero entries).
    pub records_by_validation: BTreeMap<&'static str, u64>,
    /// Bytes of raw logs skipped while resynchronising after corruption.
    pub skipped_bytes: u64,
    /// Records not stored because their document id was stored already (dedup).
    pub duplicate: u64,
}

impl ConvertSummary {
    /// Counts a rejected record.
    pub fn add_bad(&mut self, kind: BadRecordKind) {
        self.bad_records += 1;
        *self.bad_records_by_type.entry(kind.as_str()).or_default() += 1;
    }

    /// Rejected records of one kind.
    pub fn bad(&self, kind: BadRecordKind) -> u64 {
        self.bad_records_by_type
            .get(kind.as_str())
            .copied()
            .unwrap_or(0)
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &ConvertSummary) {
        self.records_read += other.records_read;
        self.records_written += other.records_written;
        self.bad_records += other.bad_records;
        for (kind, n) in &other.bad_records_by_type {
            *self.bad_records_by_type.entry(kind).or_default() += n;
        }
        self.bytes_read += other.bytes_read;
        self.bytes_uncompressed += other.bytes_uncompressed;
        self.bytes_written += other.bytes_written;
        self.histograms_converted += other.histograms_converted;
        self.unknown_histograms += other.unknown_histograms;
        self.histograms_dropped += other.histograms_dropped;
        self.histograms_self_described += other.histograms_self_described;
        self.histograms_nearest += other.histograms_nearest;
        for (label, n) in &other.records_by_validation {
            *self.records_by_validation.entry(label).or_default() += n;
        }
        self.skipped_bytes += other.skipped_bytes;
        self.duplicate += other.duplicate;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let mut a = ConvertSummary {
            records_read: 2,
            records_written: 1,
            bytes_read: 10,
            ..Default::default()
        };
        a.add_bad(BadRecordKind::BadPayload);
        let mut b = ConvertSummary {
            records_read: 3,
            records_written: 2,
            skipped_bytes: 4,
            ..Default::default()
        };
        b.add_bad(BadRecordKind::BadPayload);
        b.add_bad(BadRecordKind::UuidOnlyPath);
        a.merge(&b);
        assert_eq!(
            (
                a.records_read,
                a.records_written,
                a.bad_records,
                a.skipped_bytes
            ),
            (5, 3, 3, 4)
        );
        assert_eq!(a.bad(BadRecordKind::BadPayload), 2);
        assert_eq!(
            serde_json::to_value(&a).unwrap()["bad_records_by_type"],
            serde_json::json!({"bad_payload": 2, "uuid_only_path": 1})
        );
    }
}
