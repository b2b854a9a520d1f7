//! A job's input filter resolved against the storage schema. A filter names the dimensions it
//! restricts by `field_name`, in any order and any subset (the others allow everything); no filter
//! at all reads everything. The result is a [`Schema`] with the storage schema's dimensions in
//! layout order, which is what partition listing compares directory and file names with. A
//! dimension the storage schema does not have is an error naming the valid ones, so a filter can
//! no longer select nothing because its dimensions are fewer, more or in another order than the
//! layout's. (A seed filter lists every dimension in schema order; it resolves to itself.)

use serde_json::{json, Map, Value};

use super::{Schema, StorageError};

/// Why a filter cannot be used with a storage schema.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The document is not a usable `telemetry_schema.json`-style filter.
    #[error("the filter is not usable: {0}")]
    Invalid(#[source] StorageError),
    /// A dimension the storage schema does not have.
    #[error("the filter names dimension {name:?}, which the storage schema does not have; valid dimensions: {}", valid.join(", "))]
    UnknownDimension {
        /// The `field_name` given.
        name: String,
        /// The storage schema's dimension names, in layout order.
        valid: Vec<String>,
    },
    /// The same dimension twice.
    #[error("the filter names dimension {name:?} twice")]
    Duplicate {
        /// The repeated `field_name`.
        name: String,
    },
}

/// Resolves `filter` (a parsed filter document, or `None` for "everything") against the storage
/// `schema`: dimensions matched by `field_name`, the ones not named allow every value.
pub fn resolve(filter: Option<&Value>, schema: &Schema) -> Result<Schema, FilterError> {
    let given = match filter {
        None | Some(Value::Null) => Map::new(),
        Some(doc) => named_dimensions(doc)?,
    };
    let valid: Vec<String> = schema
        .dimension_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    if let Some(name) = given.keys().find(|n| !valid.contains(n)) {
        return Err(FilterError::UnknownDimension {
            name: name.clone(),
            valid,
        });
    }
    let dims: Vec<Value> = valid
        .iter()
        .map(|name| {
            let allowed = given.get(name).cloned().unwrap_or_else(|| json!("*"));
            json!({"field_name": name, "allowed_values": allowed})
        })
        .collect();
    Schema::from_json(&json!({"version": 1, "dimensions": dims}).to_string())
        .map_err(FilterError::Invalid)
}

/// The filter's `allowed_values` by `field_name`, after checking the document's shape (a missing
/// `dimensions` array means no restriction).
fn named_dimensions(doc: &Value) -> Result<Map<String, Value>, FilterError> {
    let mut doc = doc.clone();
    if let Some(obj) = doc.as_object_mut() {
        obj.entry("dimensions").or_insert_with(|| json!([]));
    }
    // The schema parser checks every entry (version, field_name, allowed_values).
    Schema::from_json(&doc.to_string()).map_err(FilterError::Invalid)?;
    let mut out = Map::new();
    for d in doc["dimensions"].as_array().into_iter().flatten() {
        let name = d["field_name"].as_str().unwrap_or_default().to_string();
        if out
            .insert(name.clone(), d["allowed_values"].clone())
            .is_some()
        {
            return Err(FilterError::Duplicate { name });
        }
    }
    Ok(out)
}

/// `filter` as a filter document (every dimension named, in order) that [`resolve`] and
/// [`Schema::from_json`] read back as the same filter: how a resolved filter is sent to a
/// cluster member that lists its own storage with it.
pub fn document(filter: &Schema) -> Value {
    let dims: Vec<Value> = filter
        .dimensions()
        .iter()
        .map(|d| json!({"field_name": d.name, "allowed_values": d.allowed.to_json()}))
        .collect();
    json!({"version": 1, "dimensions": dims})
}

/// The dimensions `filter` restricts, as `name=allowed` (`allowed` as JSON), for messages; "no
/// dimension restricted" when it allows everything.
pub fn describe(filter: &Schema) -> String {
    let restricted: Vec<String> = filter
        .dimensions()
        .iter()
        .filter(|d| d.allowed != super::schema::Allowed::Any)
        .map(|d| format!("{}={}", d.name, d.allowed.to_json()))
        .collect();
    if restricted.is_empty() {
        "no dimension restricted".into()
    } else {
        restricted.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::DEFAULT_SCHEMA;

    fn storage() -> Schema {
        Schema::from_json(DEFAULT_SCHEMA).unwrap()
    }

    fn dims(s: &Schema) -> Vec<(String, String)> {
        s.dimensions()
            .iter()
            .map(|d| (d.name.clone(), d.allowed.to_json().to_string()))
            .collect()
    }

    #[test]
    fn a_resolved_filter_survives_its_document() {
        let filter = json!({"dimensions": [
            {"field_name": "appUpdateChannel", "allowed_values": ["nightly", "beta"]},
            {"field_name": "submission_date", "allowed_values": {"min": "20150528"}}]});
        let resolved = resolve(Some(&filter), &storage()).unwrap();
        let back = resolve(Some(&document(&resolved)), &storage()).unwrap();
        assert_eq!(dims(&back), dims(&resolved));
        assert_ne!(dims(&back), dims(&storage().all_files().unwrap()));
    }

    #[test]
    fn a_subset_in_any_order_is_placed_at_the_schema_levels() {
        let filter = json!({"dimensions": [
            {"field_name": "appUpdateChannel", "allowed_values": ["nightly"]},
            {"field_name": "reason", "allowed_values": "saved-session"}]});
        let resolved = resolve(Some(&filter), &storage()).unwrap();
        assert_eq!(resolved.dimension_names(), storage().dimension_names());
        let d = dims(&resolved);
        assert_eq!(d[0].1, r#"["saved-session"]"#);
        assert_eq!(d[2].1, r#"["nightly"]"#);
        assert!(d[1].1 == "\"*\"" && d[5].1 == "\"*\"", "{d:?}");
        // Stored names are computed at the storage level: `saved-session` matches its directory.
        assert!(resolved.matches_prefix(0, "saved_session"));
        assert!(!resolved.matches_prefix(0, "main"));
        assert!(resolved.matches_prefix(1, "Fennec"));
        assert_eq!(
            describe(&resolved),
            r#"reason=["saved-session"], appUpdateChannel=["nightly"]"#
        );
    }

    #[test]
    fn no_filter_and_an_empty_one_allow_everything() {
        for f in [
            None,
            Some(json!({})),
            Some(json!({"version": 1, "dimensions": []})),
        ] {
            let resolved = resolve(f.as_ref(), &storage()).unwrap();
            assert_eq!(resolved.len(), 6);
            assert!(resolved
                .dimensions()
                .iter()
                .all(|d| d.allowed == crate::storage::schema::Allowed::Any));
            assert_eq!(describe(&resolved), "no dimension restricted");
        }
    }

    #[test]
    fn a_full_seed_filter_resolves_to_itself() {
        let seed = Schema::from_json(DEFAULT_SCHEMA).unwrap();
        let doc: Value = serde_json::from_str(DEFAULT_SCHEMA).unwrap();
        assert_eq!(resolve(Some(&doc), &storage()).unwrap(), seed);
    }

    #[test]
    fn unknown_and_repeated_dimensions_are_errors_naming_the_valid_ones() {
        let typo = json!({"dimensions": [{"field_name": "channel", "allowed_values": "*"}]});
        let err = resolve(Some(&typo), &storage()).unwrap_err().to_string();
        assert!(err.contains("\"channel\""), "{err}");
        assert!(
            err.contains(
                "reason, appName, appUpdateChannel, appVersion, appBuildID, submission_date"
            ),
            "{err}"
        );
        let twice = json!({"dimensions": [
            {"field_name": "reason", "allowed_values": "*"},
            {"field_name": "reason", "allowed_values": "main"}]});
        assert!(matches!(
            resolve(Some(&twice), &storage()),
            Err(FilterError::Duplicate { .. })
        ));
        let bad = json!({"dimensions": "nope"});
        assert!(matches!(
            resolve(Some(&bad), &storage()),
            Err(FilterError::Invalid(_))
        ));
    }
}
