//! A unified `saved-session` ping made to look like a classic one (docs/convert.md):
//! payload sections moved to the top, `payload.info` merged into `info`, classic `info` fields
//! filled from `environment`.

use super::bad_record::BadRecord;
use super::document::{member, parse_object};
use super::fields::{string_value, Fields};

/// Classic `info` field ← path in `environment`.
const ENVIRONMENT_INFO: [(&str, &[&str]); 24] = [
    ("appID", &["build", "applicationId"]),
    ("platformBuildID", &["build", "buildId"]),
    ("cpucount", &["system", "cpu", "count"]),
    ("memsize", &["system", "memoryMB"]),
    ("isWow64", &["system", "isWow64"]),
    ("device", &["system", "device", "model"]),
    ("manufacturer", &["system", "device", "manufacturer"]),
    ("hardware", &["system", "device", "hardware"]),
    ("tablet", &["system", "device", "isTablet"]),
    ("locale", &["settings", "locale"]),
    ("OS", &["system", "os", "name"]),
    ("version", &["system", "os", "version"]),
    ("kernel_version", &["system", "os", "kernelVersion"]),
    ("D2DEnabled", &["system", "gfx", "D2DEnabled"]),
    ("DWriteEnabled", &["system", "gfx", "DWriteEnabled"]),
    ("DWriteVersion", &["system", "gfx", "DWriteVersion"]),
    ("profileHDDModel", &["system", "hdd", "profile", "model"]),
    (
        "profileHDDRevision",
        &["system", "hdd", "profile", "revision"],
    ),
    ("binHDDModel", &["system", "hdd", "binary", "model"]),
    ("binHDDRevision", &["system", "hdd", "binary", "revision"]),
    ("winHDDModel", &["system", "hdd", "system", "model"]),
    ("winHDDRevision", &["system", "hdd", "system", "revision"]),
    ("activeExperiment", &["addons", "activeExperiment", "id"]),
    (
        "activeExperimentBranch",
        &["addons", "activeExperiment", "branch"],
    ),
];

/// GPU adapter field → classic `info` field prefix (the second adapter adds the suffix `2`).
const ADAPTER_INFO: [(&str, &str); 8] = [
    ("description", "adapterDescription"),
    ("vendorID", "adapterVendorID"),
    ("deviceID", "adapterDeviceID"),
    ("subsysID", "adapterSubsysID"),
    ("RAM", "adapterRAM"),
    ("driver", "adapterDriver"),
    ("driverVersion", "adapterDriverVersion"),
    ("driverDate", "adapterDriverDate"),
];

/// Objects of one JSON text looked into by path, each parsed once: the 30-odd lookups of a
/// saved-session's `environment` share their prefixes (`system`, `system.gfx`, …), and parsing
/// `environment` again for each of them cost more than the rest of the ping's conversion.
struct Nested<'a> {
    root: &'a str,
    /// Parsed objects by path from the root (`None`: not an object).
    parsed: Vec<(Vec<&'static str>, Option<Fields<'a>>)>,
}

impl<'a> Nested<'a> {
    fn new(root: &'a str) -> Nested<'a> {
        Nested {
            root,
            parsed: Vec::new(),
        }
    }

    /// Follows `path` through nested objects; `None` when absent or null.
    fn lookup(&mut self, path: &[&'static str]) -> Option<&'a str> {
        let mut current = self.root;
        for depth in 0..path.len() {
            let fields = self.object(&path[..depth], current)?;
            current = member(fields, path[depth])?;
        }
        (current != "null").then_some(current)
    }

    /// The object at `prefix` (whose JSON text is `text`), parsed on first use.
    fn object(&mut self, prefix: &[&'static str], text: &'a str) -> Option<&Fields<'a>> {
        let at = match self.parsed.iter().position(|(p, _)| p == prefix) {
            Some(at) => at,
            None => {
                let fields = parse_object(text, prefix.last().unwrap_or(&"")).ok();
                self.parsed.push((prefix.to_vec(), fields));
                self.parsed.len() - 1
            }
        };
        self.parsed[at].1.as_ref()
    }
}

/// Adds an `info` field from the environment; a clash with an existing key stores it as
/// `environment.<key>`.
fn fill<'a>(info: &mut Fields<'a>, key: &str, value: &'a str) {
    let key = if info.contains(key) {
        format!("environment.{key}")
    } else {
        key.to_owned()
    };
    info.push(key, value);
}

/// Rewrites a saved-session ping; returns the new top level and its `info`.
pub fn flatten<'a>(
    mut root: Fields<'a>,
    payload: Fields<'a>,
    payload_info: Fields<'a>,
    mut info: Fields<'a>,
    environment: &'a str,
) -> Result<(Fields<'a>, Fields<'a>), BadRecord> {
    root.remove("payload");
    let mut payload_ver = None;
    for (key, value) in payload.0 {
        match key.as_ref() {
            "info" => {}
            "ver" => payload_ver = Some(value),
            _ if root.contains(&key) => root.push(format!("payload.{key}"), value),
            _ => root.push(key, value),
        }
    }
    for (key, value) in payload_info.0 {
        if !info.contains(&key) {
            info.push(key, value);
        }
    }
    if let Some(ver) = payload_ver {
        root.push("payload.ver", ver);
    }
    let mut environment = Nested::new(environment);
    for (key, path) in ENVIRONMENT_INFO {
        if let Some(value) = environment.lookup(path) {
            fill(&mut info, key, value);
        }
    }
    if let Some(theme) = environment.lookup(&["addons", "theme", "id"]) {
        fill(&mut info, "persona", theme);
    }
    if info
        .get("OS")
        .and_then(string_value)
        .is_some_and(|os| os.starts_with("Windows_"))
    {
        info.set("OS", "\"WINNT\"");
    }
    if let Some(adapters) = environment.lookup(&["system", "gfx", "adapters"]) {
        let adapters: Vec<&serde_json::value::RawValue> =
            serde_json::from_str(adapters).unwrap_or_default();
        for (n, adapter) in adapters.iter().take(2).enumerate() {
            let mut adapter = Nested::new(adapter.get());
            let suffix = if n == 0 { "" } else { "2" };
            for (from, to) in ADAPTER_INFO {
                if let Some(value) = adapter.lookup(&[from]) {
                    fill(&mut info, &format!("{to}{suffix}"), value);
                }
            }
            if n == 1 {
                if let Some(active) = adapter.lookup(&["GPUActive"]) {
                    fill(&mut info, "isGPU2Active", active);
                }
            }
        }
    }
    if let Some(client_id) = member(&root, "clientId") {
        root.push("clientID", client_id);
    }
    root.set("ver", "5");
    root.push("info", info.to_json());
    Ok((root, info))
}
