//! How a column of extracted [`Field`]s becomes one typed Arrow array. Each column has a
//! [`ColumnType`]: given by the user, or [`ColumnType::Auto`], decided per partition file by
//! [`infer`] from the values present (missing and `null` values are Arrow nulls and do not count):
//!
//! | values present | type |
//! |---|---|
//! | only booleans | `Boolean` |
//! | only numbers, all integers that fit in 64 bits | `Int64` |
//! | only numbers | `Float64` |
//! | only strings | `Utf8` |
//! | none | `Utf8` (all null) |
//! | anything else: an object or array, or a mix of kinds | `Utf8` holding each value as JSON text (`"a"`, `1`, `true`, `{…}`) |
//!
//! A value that does not fit a type the user gave (text in an `int` column) is null and counted.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::ArrayRef;
use arrow_schema::DataType;

use crate::jobs::extract::Field;

/// The type of an exported column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Decided per partition file from its values ([`infer`]).
    Auto,
    /// `Int64`.
    Int,
    /// `Float64`.
    Float,
    /// `Boolean`.
    Bool,
    /// `Utf8`: strings as they are, other values as JSON text.
    String,
    /// `Utf8`: every value as JSON text.
    Json,
}

impl std::str::FromStr for ColumnType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => ColumnType::Auto,
            "int" => ColumnType::Int,
            "float" => ColumnType::Float,
            "bool" => ColumnType::Bool,
            "string" => ColumnType::String,
            "json" => ColumnType::Json,
            _ => {
                return Err(format!(
                    "unknown column type {s:?}: use auto, int, float, bool, string or json"
                ))
            }
        })
    }
}

impl ColumnType {
    /// The Arrow type of the column (`Auto` must be resolved first).
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Int => DataType::Int64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Auto | ColumnType::String | ColumnType::Json => DataType::Utf8,
        }
    }
}

/// The type of a column whose values are `values` (see the module docs).
pub fn infer<'a>(values: impl IntoIterator<Item = &'a Field>) -> ColumnType {
    let (mut bools, mut ints, mut floats, mut texts, mut other) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for value in values {
        match value {
            Field::Missing | Field::Null => {}
            Field::Boolean(_) => bools += 1,
            Field::Number(n) if n.parse::<i64>().is_ok() => ints += 1,
            Field::Number(_) => floats += 1,
            Field::Text(_) => texts += 1,
            Field::Json(_) => other += 1,
        }
    }
    let kinds = [bools > 0, ints + floats > 0, texts > 0, other > 0];
    if kinds.iter().filter(|k| **k).count() > 1 || other > 0 {
        return ColumnType::Json;
    }
    if bools > 0 {
        ColumnType::Bool
    } else if floats > 0 {
        ColumnType::Float
    } else if ints > 0 {
        ColumnType::Int
    } else {
        ColumnType::String
    }
}

/// A value as JSON text.
fn json_text(value: &Field) -> Option<String> {
    match value {
        Field::Missing | Field::Null => None,
        Field::Boolean(b) => Some(b.to_string()),
        Field::Number(n) | Field::Json(n) => Some(n.clone()),
        Field::Text(t) => serde_json::to_string(t).ok(),
    }
}

/// `values` as an array of `kind` (not `Auto`), and how many values did not fit it.
pub fn build(kind: ColumnType, values: &[Field]) -> (ArrayRef, u64) {
    let mut misfits = 0u64;
    let mut fit = |ok: bool| {
        if !ok {
            misfits += 1;
        }
    };
    let array: ArrayRef = match kind {
        ColumnType::Bool => {
            let mut b = BooleanBuilder::with_capacity(values.len());
            for v in values {
                match v {
                    Field::Boolean(x) => b.append_value(*x),
                    other => {
                        fit(matches!(other, Field::Missing | Field::Null));
                        b.append_null()
                    }
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Int => {
            let mut b = Int64Builder::with_capacity(values.len());
            for v in values {
                let x = match v {
                    Field::Number(n) => n.parse::<i64>().ok(),
                    _ => None,
                };
                fit(x.is_some() || matches!(v, Field::Missing | Field::Null));
                b.append_option(x);
            }
            Arc::new(b.finish())
        }
        ColumnType::Float => {
            let mut b = Float64Builder::with_capacity(values.len());
            for v in values {
                let x = match v {
                    Field::Number(n) => n.parse::<f64>().ok(),
                    _ => None,
                };
                fit(x.is_some() || matches!(v, Field::Missing | Field::Null));
                b.append_option(x);
            }
            Arc::new(b.finish())
        }
        ColumnType::Auto | ColumnType::String | ColumnType::Json => {
            let mut b = StringBuilder::new();
            for v in values {
                match (kind, v) {
                    (ColumnType::String | ColumnType::Auto, Field::Text(t)) => b.append_value(t),
                    _ => b.append_option(json_text(v)),
                }
            }
            Arc::new(b.finish())
        }
    };
    (array, misfits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Float64Array, Int64Array, StringArray};

    fn num(n: &str) -> Field {
        Field::Number(n.into())
    }

    #[test]
    fn inference_follows_the_table() {
        let t = |v: &[Field]| infer(v);
        assert_eq!(t(&[num("1"), Field::Missing, num("-7")]), ColumnType::Int);
        assert_eq!(t(&[num("1"), num("2.5")]), ColumnType::Float);
        assert_eq!(t(&[num("99999999999999999999")]), ColumnType::Float);
        assert_eq!(t(&[Field::Boolean(true), Field::Null]), ColumnType::Bool);
        assert_eq!(t(&[Field::Text("a".into())]), ColumnType::String);
        assert_eq!(t(&[Field::Missing]), ColumnType::String);
        assert_eq!(t(&[Field::Text("a".into()), num("1")]), ColumnType::Json);
        assert_eq!(t(&[Field::Json("[1]".into())]), ColumnType::Json);
    }

    #[test]
    fn values_are_built_as_their_type_and_misfits_counted() {
        let (a, bad) = build(
            ColumnType::Int,
            &[num("3"), Field::Text("x".into()), Field::Null],
        );
        let a = a.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(
            (a.value(0), a.is_null(1), a.is_null(2), bad),
            (3, true, true, 1)
        );
        let (a, _) = build(ColumnType::Float, &[num("1.5e3")]);
        assert_eq!(
            a.as_any().downcast_ref::<Float64Array>().unwrap().value(0),
            1500.0
        );
        let (a, bad) = build(
            ColumnType::Json,
            &[
                Field::Text("a\"b".into()),
                num("1"),
                Field::Boolean(false),
                Field::Missing,
            ],
        );
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            (a.value(0), a.value(1), a.value(2), a.is_null(3), bad),
            ("\"a\\\"b\"", "1", "false", true, 0)
        );
    }
}
