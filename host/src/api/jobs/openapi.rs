//! The OpenAPI 3.1 document of `/api/v1`, kept in `docs/openapi.json` (one copy for readers of the
//! repository and for `GET /api/v1/openapi.json`); a test checks it lists every route.

/// `docs/openapi.json`, compiled in.
pub const DOCUMENT: &str = include_str!("../../../../docs/openapi.json");

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route served under `/api/v1`, as `(method, path)` in OpenAPI form.
    const ROUTES: &[(&str, &str)] = &[
        ("post", "/jobs"),
        ("get", "/jobs"),
        ("get", "/jobs/{id}"),
        ("delete", "/jobs/{id}"),
        ("get", "/jobs/{id}/result"),
        ("get", "/jobs/{id}/result.svg"),
        ("post", "/components"),
        ("get", "/schedules"),
        ("get", "/schedules/{id}"),
        ("delete", "/schedules/{id}"),
        ("get", "/schedules/{id}/runs"),
        ("get", "/schedules/{id}/runs/{seq}/result"),
        ("get", "/schedules/{id}/chart.svg"),
        ("get", "/openapi.json"),
        // Mounted beside the job router by `api::router` (it reads the server's metrics).
        ("get", "/stats"),
        // The cluster membership routes (`api::cluster`).
        ("get", "/cluster"),
        ("post", "/cluster/members"),
        ("post", "/cluster/members/{id}/heartbeat"),
    ];

    #[test]
    fn document_is_openapi_and_lists_every_route() {
        let doc: serde_json::Value =
            serde_json::from_str(DOCUMENT).expect("docs/openapi.json parses");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for (method, path) in ROUTES {
            assert!(
                doc["paths"][path][method].is_object(),
                "docs/openapi.json lacks {method} {path}"
            );
        }
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|ops| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| *k != "parameters")
                    .count()
            })
            .sum();
        assert_eq!(
            documented,
            ROUTES.len(),
            "docs/openapi.json documents routes the server does not serve"
        );
    }
}
