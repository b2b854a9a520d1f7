//! Conversion: raw submissions → validated records with compact histograms, plus a bad-record stream.
//!
//! INTERFACE CONTRACT (other modules depend on these names; keep them):
//! - `Converter::convert(&self, rec: &RawRecord) -> Result<Converted, BadRecord>`.
//! - `Pipeline`: a `Converter` + a `storage::StorageWriter` + an error stream;
//!   `Pipeline::convert_log(&mut self, path: &Path) -> Result<ConvertSummary, ConvertError>` converts one
//!   raw log file (ingest's live conversion calls it for every `.finished` log), `finish()` flushes.
//! - `ConvertSummary`: records in, written, bad by type, bytes in/out; `serde::Serialize`.
