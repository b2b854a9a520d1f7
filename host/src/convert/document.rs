//! One payload, already minified, → the stored document: version dispatch (seed reference §5.3,
//! §5.4), histogram sections in compact form, everything else copied through as written.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::bad_record::{BadRecord, BadRecordKind};
use super::compact::{write_histograms, write_keyed_histograms, HistogramCounts, Validation};
use super::fields::{scalar_text, string_value, Fields};
use super::options::UnknownRevision;
use super::saved_session;
use crate::histograms::{Definitions, Query, ResolveError, RevisionCache, Source};

/// A converted document.
#[derive(Debug)]
pub struct Document<'a> {
    /// Minimal JSON, one line.
    pub json: String,
    /// 2 for classic documents (`ver: 2`), 5 for converted unified pings (`version: 5`).
    pub version: u32,
    /// The `info` object the storage dimensions come from.
    pub info: Fields<'a>,
    pub histograms: HistogramCounts,
}

/// Where histogram definitions come from, and what to do when a ping's own are unavailable.
#[derive(Clone, Copy)]
pub struct Lookup<'r> {
    pub revisions: &'r RevisionCache,
    pub unknown_revision: UnknownRevision,
}

/// Converts one minified JSON document.
pub fn convert<'a>(text: &'a str, lookup: Lookup) -> Result<Document<'a>, BadRecord> {
    let root = crate::histograms::RawObject::parse(text).map_err(|e| BadRecord::json(&e))?;
    let root = Fields::from_object(root);
    if let Some(ver) = root.get("ver") {
        let ver = ver.to_owned();
        classic(root, &ver, lookup)
    } else if let Some(version) = root.get("version") {
        match version {
            "4" => unified(root, lookup),
            "5" => {
                let info = take_info(&root)?;
                Ok(Document {
                    json: root.to_json(),
                    version: 5,
                    info,
                    histograms: HistogramCounts::default(),
                })
            }
            other => Err(BadRecord::conversion(format!(
                "Unknown unified ping version: {other}"
            ))),
        }
    } else {
        Err(BadRecord::conversion("Missing payload version"))
    }
}

/// The `info` member parsed as fields (it stays in the document too).
fn take_info<'a>(root: &Fields<'a>) -> Result<Fields<'a>, BadRecord> {
    Ok(member(root, "info")
        .map(|text| parse_object(text, "info"))
        .transpose()?
        .unwrap_or_default())
}

/// JSON text of a member borrowed from the input (generated members are not looked into).
pub(super) fn member<'a>(fields: &Fields<'a>, key: &str) -> Option<&'a str> {
    fields
        .0
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| match v {
            Cow::Borrowed(b) => Some(*b),
            Cow::Owned(_) => None,
        })
}

pub(super) fn parse_object<'a>(text: &'a str, what: &str) -> Result<Fields<'a>, BadRecord> {
    crate::histograms::RawObject::parse(text)
        .map(Fields::from_object)
        .map_err(|e| BadRecord::conversion(format!("{what} is not an object: {e}")))
}

fn classic<'a>(mut root: Fields<'a>, ver: &str, lookup: Lookup) -> Result<Document<'a>, BadRecord> {
    let mut counts = HistogramCounts::default();
    match ver {
        "1" => {
            let info_text = member(&root, "info")
                .ok_or_else(|| BadRecord::conversion("Missing in payload: info"))?;
            let info = parse_object(info_text, "info")?;
            if let Some(section) =
                convert_sections(&info, &root, "histograms", None, &info, lookup, &mut counts)?
            {
                root.set("histograms", section.histograms);
            }
            root.set("ver", "2");
            Ok(Document {
                json: root.to_json(),
                version: 2,
                info,
                histograms: counts,
            })
        }
        "2" | "5" => {
            let info = take_info(&root)?;
            let version = if ver == "2" { 2 } else { 5 };
            Ok(Document {
                json: root.to_json(),
                version,
                info,
                histograms: counts,
            })
        }
        "3" => {
            let device = member(&root, "deviceinfo")
                .map(|t| parse_object(t, "deviceinfo"))
                .transpose()?
                .unwrap_or_default();
            let mut info = Fields::default();
            info.push("reason", "\"ftu\"");
            for (key, from) in [
                ("appUpdateChannel", "update_channel"),
                ("appBuildID", "platform_build_id"),
                ("appName", ""),
                ("appVersion", "platform_version"),
            ] {
                let value = if from.is_empty() {
                    Some("\"FirefoxOS\"".to_owned())
                } else {
                    device.get(from).map(str::to_owned)
                };
                info.push(key, value.unwrap_or_else(|| "\"UNKNOWN\"".to_owned()));
            }
            root.remove("pingID");
            root.set("ver", "2");
            root.set("info", info.to_json());
            Ok(Document {
                json: root.to_json(),
                version: 2,
                info,
                histograms: counts,
            })
        }
        other => Err(BadRecord::conversion(format!(
            "Unknown payload version: {other}"
        ))),
    }
}

/// Converted histogram sections of one payload.
pub struct Sections {
    pub histograms: String,
    pub keyed: Option<String>,
}

/// Converts `histograms` (and `keyedHistograms` when `keyed_key` is given) of `container`,
/// with the definitions of `info.revision` (or the table fallback from `build`'s fields).
/// `None` when there is nothing to convert (no histograms and no revision).
fn convert_sections(
    info: &Fields,
    container: &Fields,
    histograms_key: &str,
    keyed_key: Option<&str>,
    build: &Fields,
    lookup: Lookup,
    counts: &mut HistogramCounts,
) -> Result<Option<Sections>, BadRecord> {
    let revision = info.get("revision").and_then(scalar_text);
    let histograms = container.get(histograms_key);
    let Some(histograms) = histograms else {
        return match revision {
            Some(_) => Err(BadRecord::conversion("Missing in payload: histograms")),
            None => Ok(None),
        };
    };
    let text = |k: &str| build.get(k).and_then(scalar_text);
    let (channel, build_id, app_version) = (
        text("appUpdateChannel"),
        text("appBuildID"),
        text("appVersion"),
    );
    let (defs, validation) = definitions(
        lookup,
        &Query {
            revision: revision.as_deref(),
            channel: channel.as_deref(),
            build_id: build_id.as_deref(),
            app_version: app_version.as_deref(),
        },
    )?;
    let mut out = String::with_capacity(histograms.len() / 2);
    write_histograms(raw(histograms)?, &defs, validation, &mut out, counts)?;
    let keyed = match keyed_key.and_then(|k| container.get(k)) {
        None => None,
        Some(section) => {
            let mut keyed = String::with_capacity(section.len() / 2);
            write_keyed_histograms(raw(section)?, &defs, validation, &mut keyed, counts)?;
            Some(keyed)
        }
    };
    Ok(Some(Sections {
        histograms: out,
        keyed,
    }))
}

fn raw(text: &str) -> Result<&RawValue, BadRecord> {
    serde_json::from_str(text).map_err(|e| BadRecord::payload(format!("histogram section: {e}")))
}

/// Definitions for a ping and how strictly to validate against them, errors classified like
/// the seed's stats. With [`UnknownRevision::Nearest`] a missing revision gets the nearest
/// definitions, and any definitions that are not the ping's own drop what does not fit.
fn definitions(lookup: Lookup, query: &Query) -> Result<(Arc<Definitions>, Validation), BadRecord> {
    let lenient = lookup.unknown_revision == UnknownRevision::Nearest;
    let resolved = match lookup.revisions.resolve(query) {
        Err(ResolveError::NotFound(_)) if lenient => lookup.revisions.nearest(query),
        other => other,
    };
    match resolved {
        Ok(resolved) => {
            let validation = if lenient && resolved.source != Source::Revision {
                Validation::DropInvalid
            } else {
                Validation::Reject
            };
            Ok((resolved.definitions, validation))
        }
        Err(err @ ResolveError::NoRevision) => Err(BadRecord::new(
            BadRecordKind::MissingRevision,
            err.to_string(),
        )),
        Err(err @ ResolveError::InvalidUrl(_))
            if query.revision.is_some_and(|u| u.starts_with("/rev/")) =>
        {
            Err(BadRecord::new(
                BadRecordKind::MissingRevisionRepo,
                err.to_string(),
            ))
        }
        Err(err @ ResolveError::NotFound(_)) => Err(BadRecord::new(
            BadRecordKind::MissingHistograms,
            err.to_string(),
        )),
        Err(err) => Err(BadRecord::conversion(err.to_string())),
    }
}

/// `application` field → classic `info` field.
const APPLICATION_INFO: [(&str, &str); 8] = [
    ("appName", "name"),
    ("appUpdateChannel", "channel"),
    ("appVersion", "version"),
    ("appBuildID", "buildId"),
    ("arch", "architecture"),
    ("platformVersion", "platformVersion"),
    ("xpcomAbi", "xpcomAbi"),
    ("vendor", "vendor"),
];

fn unified<'a>(mut root: Fields<'a>, lookup: Lookup) -> Result<Document<'a>, BadRecord> {
    let ping_type = member(&root, "type")
        .and_then(string_value)
        .filter(|t| !t.is_empty());
    let ping_type = ping_type
        .ok_or_else(|| BadRecord::conversion("Unified ping has no top-level 'type' field"))?
        .into_owned();
    let application = member(&root, "application").ok_or_else(|| {
        BadRecord::conversion("Unified ping has no top-level 'application' field")
    })?;
    let application = parse_object(application, "application")?;
    let payload_text = member(&root, "payload")
        .ok_or_else(|| BadRecord::conversion("Unified ping has no top-level 'payload' field"))?;
    if root.contains("info") {
        return Err(BadRecord::conversion(
            "Raw unified ping has an existing ping.info field",
        ));
    }
    let mut info = Fields::default();
    for (to, from) in APPLICATION_INFO {
        if let Some(value) = application.get(from) {
            info.push(to, value.to_owned());
        }
    }
    info.push(
        "reason",
        serde_json::to_string(&ping_type).unwrap_or_default(),
    );
    root.set("version", "5");
    let mut counts = HistogramCounts::default();
    if ping_type != "main" && ping_type != "saved-session" {
        root.push("info", info.to_json());
        return Ok(Document {
            json: root.to_json(),
            version: 5,
            info,
            histograms: counts,
        });
    }
    let environment = member(&root, "environment");
    if ping_type == "saved-session" && environment.is_none() {
        return Err(BadRecord::conversion(
            "Unified saved-session ping has no top-level 'environment' field",
        ));
    }
    let mut payload = parse_object(payload_text, "payload")?;
    let payload_info = member(&payload, "info")
        .ok_or_else(|| BadRecord::conversion("Missing in payload: info"))?;
    let payload_info = parse_object(payload_info, "payload.info")?;
    if !payload.contains("histograms") {
        return Err(BadRecord::conversion("Missing in payload: histograms"));
    }
    let sections = convert_sections(
        &payload_info,
        &payload,
        "histograms",
        Some("keyedHistograms"),
        &info,
        lookup,
        &mut counts,
    )?;
    if let Some(sections) = sections {
        payload.set("histograms", sections.histograms);
        if let Some(keyed) = sections.keyed {
            payload.set("keyedHistograms", keyed);
        }
    }
    if ping_type == "saved-session" {
        let environment = environment.unwrap_or("{}");
        let (root, info) = saved_session::flatten(root, payload, payload_info, info, environment)?;
        return Ok(Document {
            json: root.to_json(),
            version: 5,
            info,
            histograms: counts,
        });
    }
    root.set("payload", payload.to_json());
    root.push("info", info.to_json());
    Ok(Document {
        json: root.to_json(),
        version: 5,
        info,
        histograms: counts,
    })
}
