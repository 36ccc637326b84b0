//! The served OpenAPI document matches the router: every route is documented, every
//! documented operation answers with a documented status, and every `$ref` resolves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_support;

use std::time::Duration;

use http_support::{config, serve, Spec};
use jobstate::NewJob;
use jobstate_std::http::openapi;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// A documented path with its placeholders filled: every dialect's job id is the UUID.
fn fill(path: &str, uuid: &str) -> String {
    ["{uuid}", "{workRequestId}", "{key}", "{job_id}"]
        .iter()
        .fold(path.to_owned(), |p, k| p.replace(k, uuid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_routes() {
    let s = serve(config(Duration::from_secs(300)), false).await;
    let doc = s.get("/api/openapi.json").await;
    assert_eq!(doc.status, 200);
    let doc = doc.body;
    assert_eq!(
        doc,
        openapi::document(),
        "the served document is the binding's"
    );
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    // The documented operations are exactly the binding's routes.
    let ops = openapi::operations(&doc);
    let mut routes: Vec<(String, String)> = openapi::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routes.sort();
    assert_eq!(ops, routes);

    // Every $ref resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling {r}"
        );
    }

    // Every documented operation answers, with a status it documents.
    let id = s.engine.submit(NewJob::new(Spec::Hold)).unwrap();
    s.engine.start(id).unwrap();
    let uuid = s.api.uuid_of(id).to_string();
    for (method, path) in &ops {
        let op = &doc["paths"][path][method];
        let mut query = Vec::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["in"] == "query" && p["required"] == true {
                let name = p["name"].as_str().unwrap();
                let v = match name {
                    "compartmentId" => s.api.compartment(),
                    _ => p["schema"]["enum"][0].as_str().unwrap(),
                };
                query.push(format!("{name}={v}"));
            }
        }
        let mut url = fill(path, &uuid);
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = s.send(s.client.request(m, s.url(&url))).await;
        let documented = op["responses"][r.status.to_string()].is_object();
        assert!(
            documented,
            "{method} {url} answered {} ({:?})",
            r.status, r.body
        );
        assert!(r.status < 400, "{method} {url}: {:?}", r.body);
    }

    // Every route is documented: a method the document does not list for a path is 405, a
    // path it does not list is 404 — the router serves nothing the document hides.
    for path in doc["paths"].as_object().unwrap().keys() {
        let url = fill(path, &uuid);
        for method in METHODS {
            if doc["paths"][path][method].is_object() {
                continue;
            }
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = s.send(s.client.request(m, s.url(&url))).await;
            assert_eq!(
                r.status, 405,
                "{method} {path} is served but not documented"
            );
            // ONTAP's envelope, or OCI's error body on its paths.
            let code = r.body["error"]["code"].as_str().or(r.body["code"].as_str());
            assert!(
                matches!(code, Some("460773" | "MethodNotAllowed")),
                "{method} {path}: {:?}",
                r.body
            );
        }
    }
    for path in [
        "/api",
        "/api/cluster",
        "/api/cluster/jobs/",
        "/api/cluster/jobs/x/y",
        "/api/openapi",
        "/api/cluster/jobs/{uuid}/logs",
        "/20200501",
        "/20200501/workRequests/{uuid}/nothing",
    ] {
        let r = s.get(&fill(path, &uuid)).await;
        assert_eq!(r.status, 404, "{path} answers but is not documented");
        assert_eq!(r.body["error"]["code"], "460774");
    }
}
