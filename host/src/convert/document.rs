//! One payload, already minified, → the stored document: version dispatch (the 2013 converter's
//! rules, docs/formats/storage.md), histogram sections in compact form, everything else copied
//! through as written. Outside strict mode every v4 document type is kept, with `info`
//! synthesised from `application`, `environment.build` or the pipeline's `meta`, and a
//! Heka-framed message (`{"fields": …, "payload": ping}`) is unwrapped to the ping it carries.

use std::borrow::Cow;
use std::sync::Arc;

use super::bad_record::{BadRecord, BadRecordKind};
use super::compact::{Basis, HistogramCounts, Layouts, SectionWriter, Validation};
use super::fields::{scalar_text, string_value, Fields};
use super::options::UnknownRevision;
use super::saved_session;
use super::validation::Marks;
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
    /// How its histograms were validated; `None` without histograms.
    pub validation: Option<Basis>,
}

impl<'a> Document<'a> {
    /// The document `root` with its histogram marks (stored in it outside strict mode).
    fn new(
        mut root: Fields<'a>,
        version: u32,
        info: Fields<'a>,
        marks: Marks,
        lookup: Lookup,
    ) -> Self {
        if lookup.unknown_revision != UnknownRevision::Reject {
            marks.store(&mut root);
        }
        Document {
            json: root.to_json(),
            version,
            info,
            histograms: marks.counts,
            validation: marks.basis,
        }
    }
}

/// Where histogram definitions come from, and what to do when a ping's own are unavailable.
#[derive(Clone, Copy)]
pub struct Lookup<'r> {
    pub revisions: &'r RevisionCache,
    pub unknown_revision: UnknownRevision,
}

impl Lookup<'_> {
    /// Documents of any shape a client sends are kept (`keep` mode), not only those the 2013
    /// converter accepted.
    fn lenient(&self) -> bool {
        self.unknown_revision == UnknownRevision::Keep
    }
}

/// Converts one minified JSON document; `validated`: a scan found it an object serde_json
/// accepts, so its members are found without parsing it again.
pub fn convert<'a>(
    text: &'a str,
    validated: bool,
    lookup: Lookup,
) -> Result<Document<'a>, BadRecord> {
    let members = validated.then(|| super::split::members(text)).flatten();
    let root = match members {
        Some(members) => borrowed_fields(members),
        None => Fields::from_object(
            crate::histograms::RawObject::parse(text).map_err(|e| BadRecord::json(&e))?,
        ),
    };
    if let Some(ver) = root.get("ver") {
        let ver = ver.to_owned();
        classic(root, &ver, lookup)
    } else if let Some(version) = root.get("version") {
        match version {
            "4" => unified(root, lookup),
            "5" => {
                let info = take_info(&root)?;
                Ok(Document::new(root, 5, info, Marks::default(), lookup))
            }
            other => Err(BadRecord::conversion(format!(
                "Unknown unified ping version: {other}"
            ))),
        }
    } else if let Some(ping) = heka_payload(&root).filter(|_| lookup.lenient()) {
        // A member of a parsed document: valid JSON.
        convert(ping, true, lookup)
    } else {
        Err(BadRecord::conversion("Missing payload version"))
    }
}

/// The ping inside a Heka-framed message as the 2016–2017 pipeline stored it: an object with
/// `fields` (pipeline metadata), `payload` (the ping, an object with its own version) and
/// possibly other frame metadata (e.g. a classic `info`), which is dropped with the frame.
fn heka_payload<'a>(root: &Fields<'a>) -> Option<&'a str> {
    if !root.contains("fields") {
        return None;
    }
    let payload = member(root, "payload")?;
    let ping = parse_object(payload, "payload").ok()?;
    (ping.contains("version") || ping.contains("ver")).then_some(payload)
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

/// Members found in the input as fields that borrow it.
fn borrowed_fields(members: Vec<super::split::Member<'_>>) -> Fields<'_> {
    Fields(
        members
            .into_iter()
            .map(|(k, v)| (k, Cow::Borrowed(v)))
            .collect(),
    )
}

/// `text` (a member of a parsed document, so valid JSON) as an object's fields.
pub(super) fn parse_object<'a>(text: &'a str, what: &str) -> Result<Fields<'a>, BadRecord> {
    if let Some(members) = super::split::members(text) {
        return Ok(borrowed_fields(members));
    }
    crate::histograms::RawObject::parse(text)
        .map(Fields::from_object)
        .map_err(|e| BadRecord::conversion(format!("{what} is not an object: {e}")))
}

fn classic<'a>(mut root: Fields<'a>, ver: &str, lookup: Lookup) -> Result<Document<'a>, BadRecord> {
    let mut marks = Marks::default();
    match ver {
        "1" => {
            let info_text = member(&root, "info")
                .ok_or_else(|| BadRecord::conversion("Missing in payload: info"))?;
            let info = parse_object(info_text, "info")?;
            if let Some(section) =
                convert_sections(&info, &root, "histograms", None, &info, lookup, &mut marks)?
            {
                root.set("histograms", section.histograms);
            }
            root.set("ver", "2");
            Ok(Document::new(root, 2, info, marks, lookup))
        }
        "2" | "5" => {
            let info = take_info(&root)?;
            let version = if ver == "2" { 2 } else { 5 };
            Ok(Document::new(root, version, info, marks, lookup))
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
            Ok(Document::new(root, 2, info, marks, lookup))
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
/// with the definitions of `info.revision` (or the table fallback from `build`'s fields) or,
/// when those are not the ping's own and the mode allows it, each histogram's own parameters.
/// `None` when there is nothing to convert (no histograms and no revision).
fn convert_sections(
    info: &Fields,
    container: &Fields,
    histograms_key: &str,
    keyed_key: Option<&str>,
    build: &Fields,
    lookup: Lookup,
    marks: &mut Marks,
) -> Result<Option<Sections>, BadRecord> {
    let revision = info.get("revision").and_then(scalar_text);
    let histograms = container.get(histograms_key);
    let Some(histograms) = histograms else {
        return match revision {
            Some(_) if !lookup.lenient() => {
                Err(BadRecord::conversion("Missing in payload: histograms"))
            }
            _ => Ok(None),
        };
    };
    let text = |k: &str| build.get(k).and_then(scalar_text);
    let (channel, build_id, app_version) = (
        text("appUpdateChannel"),
        text("appBuildID"),
        text("appVersion"),
    );
    let query = Query {
        revision: revision.as_deref(),
        channel: channel.as_deref(),
        build_id: build_id.as_deref(),
        app_version: app_version.as_deref(),
    };
    let (defs, layouts) = definitions(lookup, &query)?;
    let mut writer = SectionWriter::new(Layouts {
        definitions: defs.as_deref(),
        ..layouts
    });
    let mut out = String::with_capacity(histograms.len() / 2);
    writer.write_histograms(histograms, &mut out)?;
    let keyed = match keyed_key.and_then(|k| container.get(k)) {
        None => None,
        Some(section) => {
            let mut keyed = String::with_capacity(section.len() / 2);
            writer.write_keyed_histograms(section, &mut keyed)?;
            Some(keyed)
        }
    };
    if defs.is_none() && writer.counts.converted == 0 && writer.counts.unknown > 0 {
        // Histograms, none of which carries its layout, and no definitions at all.
        return Err(match query.revision {
            Some(rev) => BadRecord::new(
                BadRecordKind::MissingHistograms,
                ResolveError::NotFound(rev.to_owned()).to_string(),
            ),
            None => BadRecord::new(
                BadRecordKind::MissingRevision,
                ResolveError::NoRevision.to_string(),
            ),
        });
    }
    marks.add(&writer, layouts.own);
    Ok(Some(Sections {
        histograms: out,
        keyed,
    }))
}

/// Definitions for a ping and how to lay out and check its histograms with them, errors
/// classified like the 2013 converter's stats:
/// - strict ([`UnknownRevision::Reject`]): the ping's own definitions (revision or build-id
///   table) or the record is rejected; a histogram that does not validate rejects it too;
/// - [`UnknownRevision::Nearest`]: else the nearest definitions, which drop what does not fit;
/// - [`UnknownRevision::Keep`]: the ping's own revision when available (a histogram that does
///   not validate is dropped), else each histogram's own parameters, then the nearest
///   definitions for histograms without any.
fn definitions(
    lookup: Lookup,
    query: &Query,
) -> Result<(Option<Arc<Definitions>>, Layouts<'static>), BadRecord> {
    let layouts = |own, self_describe, validation| Layouts {
        definitions: None,
        own,
        self_describe,
        validation,
    };
    let resolved = match (lookup.unknown_revision, lookup.revisions.resolve(query)) {
        (UnknownRevision::Keep, Ok(r)) if r.source == Source::Revision => {
            return Ok((
                Some(r.definitions),
                layouts(true, false, Validation::DropInvalid),
            ));
        }
        (UnknownRevision::Keep, _) => {
            let nearest = lookup.revisions.nearest(query).ok().map(|r| r.definitions);
            return Ok((nearest, layouts(false, true, Validation::DropInvalid)));
        }
        (UnknownRevision::Nearest, Err(ResolveError::NotFound(_))) => {
            lookup.revisions.nearest(query)
        }
        (_, other) => other,
    };
    match resolved {
        Ok(resolved) => {
            let own = resolved.source == Source::Revision;
            let validation = if lookup.unknown_revision == UnknownRevision::Nearest && !own {
                Validation::DropInvalid
            } else {
                Validation::Reject
            };
            Ok((Some(resolved.definitions), layouts(own, false, validation)))
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

/// Where `info` fields come from when a ping has no `application` (keep mode): the
/// environment's build section, its update channel, then the pipeline's `meta`.
const FALLBACK_INFO: [(&str, &[&[&str]]); 4] = [
    (
        "appName",
        &[
            &["environment", "build", "applicationName"],
            &["meta", "appName"],
        ],
    ),
    (
        "appUpdateChannel",
        &[
            &["environment", "settings", "update", "channel"],
            &["meta", "appUpdateChannel"],
            &["meta", "normalizedChannel"],
        ],
    ),
    (
        "appVersion",
        &[
            &["environment", "build", "version"],
            &["meta", "appVersion"],
        ],
    ),
    (
        "appBuildID",
        &[
            &["environment", "build", "buildId"],
            &["meta", "appBuildId"],
        ],
    ),
];

/// Follows `path` through nested objects of `root`; `None` when absent or null.
fn nested<'a>(root: &Fields<'a>, path: &[&str]) -> Option<&'a str> {
    let (first, rest) = path.split_first()?;
    let mut current = member(root, first)?;
    for key in rest {
        current = member(&parse_object(current, key).ok()?, key)?;
    }
    (current != "null").then_some(current)
}

/// The classic `info` of a unified ping: from `application`, else (keep mode) from the
/// environment and `meta`; `reason` is the ping type.
fn unified_info<'a>(
    root: &Fields<'a>,
    ping_type: Option<&str>,
    lookup: Lookup,
) -> Result<Fields<'a>, BadRecord> {
    let mut info = Fields::default();
    match member(root, "application") {
        Some(application) => {
            let application = parse_object(application, "application")?;
            for (to, from) in APPLICATION_INFO {
                if let Some(value) = application.get(from) {
                    info.push(to, value.to_owned());
                }
            }
        }
        None if lookup.lenient() => {}
        None => {
            return Err(BadRecord::conversion(
                "Unified ping has no top-level 'application' field",
            ))
        }
    }
    for (to, paths) in FALLBACK_INFO.iter().filter(|_| lookup.lenient()) {
        if !info.contains(to) {
            if let Some(value) = paths.iter().find_map(|path| nested(root, path)) {
                info.push(*to, value);
            }
        }
    }
    if let Some(ping_type) = ping_type {
        info.push(
            "reason",
            serde_json::to_string(ping_type).unwrap_or_default(),
        );
    }
    Ok(info)
}

fn unified<'a>(mut root: Fields<'a>, lookup: Lookup) -> Result<Document<'a>, BadRecord> {
    let ping_type = member(&root, "type")
        .and_then(string_value)
        .filter(|t| !t.is_empty())
        .map(Cow::into_owned);
    if ping_type.is_none() && !lookup.lenient() {
        return Err(BadRecord::conversion(
            "Unified ping has no top-level 'type' field",
        ));
    }
    let mut info = unified_info(&root, ping_type.as_deref(), lookup)?;
    let payload_text = member(&root, "payload");
    if payload_text.is_none() && !lookup.lenient() {
        return Err(BadRecord::conversion(
            "Unified ping has no top-level 'payload' field",
        ));
    }
    if root.contains("info") {
        if !lookup.lenient() {
            return Err(BadRecord::conversion(
                "Raw unified ping has an existing ping.info field",
            ));
        }
        // A client (or an older pipeline) sent a classic `info` too: what the unified ping
        // says wins, the sent members it does not say are kept; one `info` is stored.
        info.extend_missing(take_info(&root)?);
        root.remove("info");
    }
    root.set("version", "5");
    let marks = Marks::default();
    let ping_type = ping_type.unwrap_or_default();
    let (Some(payload_text), "main" | "saved-session") = (payload_text, ping_type.as_str()) else {
        root.push("info", info.to_json());
        return Ok(Document::new(root, 5, info, marks, lookup));
    };
    main_or_saved_session(root, payload_text, &ping_type, info, lookup)
}

/// A `main` or `saved-session` ping with a payload: its histograms converted, a saved-session
/// flattened to the classic layout.
fn main_or_saved_session<'a>(
    mut root: Fields<'a>,
    payload_text: &'a str,
    ping_type: &str,
    info: Fields<'a>,
    lookup: Lookup,
) -> Result<Document<'a>, BadRecord> {
    let mut marks = Marks::default();
    let environment = member(&root, "environment");
    if ping_type == "saved-session" && environment.is_none() && !lookup.lenient() {
        return Err(BadRecord::conversion(
            "Unified saved-session ping has no top-level 'environment' field",
        ));
    }
    let mut payload = parse_object(payload_text, "payload")?;
    let payload_info = match member(&payload, "info") {
        Some(text) => parse_object(text, "payload.info")?,
        None if lookup.lenient() => Fields::default(),
        None => return Err(BadRecord::conversion("Missing in payload: info")),
    };
    if !payload.contains("histograms") && !lookup.lenient() {
        return Err(BadRecord::conversion("Missing in payload: histograms"));
    }
    let sections = convert_sections(
        &payload_info,
        &payload,
        "histograms",
        Some("keyedHistograms"),
        &info,
        lookup,
        &mut marks,
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
        return Ok(Document::new(root, 5, info, marks, lookup));
    }
    root.set("payload", payload.to_json());
    root.push("info", info.to_json());
    Ok(Document::new(root, 5, info, marks, lookup))
}
