use std::collections::BTreeSet;

use serde_json::Value;

use crate::http::routes::Routes;

fn document() -> Value {
    serde_json::from_str(super::json()).expect("the document is JSON")
}

/// Every (method, path) the app registers.
fn registered() -> BTreeSet<(String, String)> {
    let mut listed = Vec::new();
    let _app = actix_web::App::new().configure(|cfg| {
        let mut routes = Routes::new(cfg);
        crate::http::register(&mut routes);
        listed = routes.listed().to_vec();
    });
    assert!(listed.len() > 30, "{listed:?}");
    listed
        .into_iter()
        .map(|(m, p)| (m.as_str().to_lowercase(), p))
        .collect()
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                out.insert((method.clone(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_registered_route_is_documented_and_nothing_else() {
    let doc = document();
    let registered = registered();
    let documented = documented(&doc);
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes without an OpenAPI operation (add #[utoipa::path] and list it in ApiDoc): {undocumented:?}"
    );
    let stale: Vec<_> = documented.difference(&registered).collect();
    assert!(stale.is_empty(), "documented but not served: {stale:?}");
}

#[test]
fn the_document_is_openapi_3_1_with_both_key_schemes_on_the_right_routes() {
    let doc = document();
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    let schemes = &doc["components"]["securitySchemes"];
    for name in ["ManagementKey", "ApiKey"] {
        assert_eq!(schemes[name]["type"], "apiKey", "{name}");
        assert_eq!(schemes[name]["in"], "header", "{name}");
        assert_eq!(schemes[name]["name"], "Authorization", "{name}");
    }
    let open = ["/healthz", "/readyz", "/metrics", "/openapi.json"];
    for (method, path) in documented(&doc) {
        let op = &doc["paths"][&path][&method];
        let security: Vec<String> = op["security"]
            .as_array()
            .map(|a| {
                a.iter()
                    .flat_map(|r| r.as_object().expect("a requirement").keys().cloned())
                    .collect()
            })
            .unwrap_or_default();
        let expected: &[&str] = if open.contains(&path.as_str()) || path.starts_with("/console") {
            &[]
        } else if path.starts_with("/v1/customer_profiles/") && path.ends_with("{achievementId}") {
            // The console reads a customer's history with the management key.
            &["ApiKey", "ManagementKey"]
        } else if path.starts_with("/v1/customer_") || path.starts_with("/v1/progress_") {
            &["ApiKey"]
        } else if path.ends_with("/achievement_events") {
            &["ManagementKey", "ApiKey"]
        } else {
            &["ManagementKey"]
        };
        assert_eq!(security, expected, "{method} {path}");
        for status in ["4XX", "5XX"] {
            assert_eq!(
                op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorResponse",
                "{method} {path} {status}"
            );
        }
    }
}

/// Every `$ref` names a schema that exists.
#[test]
fn every_reference_resolves() {
    fn walk(v: &Value, doc: &Value, seen: &mut usize) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let name = r
                        .strip_prefix("#/components/schemas/")
                        .unwrap_or_else(|| panic!("unexpected $ref {r}"));
                    assert!(
                        doc["components"]["schemas"].get(name).is_some(),
                        "$ref to a missing schema: {r}"
                    );
                    *seen += 1;
                }
                map.values().for_each(|x| walk(x, doc, seen));
            }
            Value::Array(items) => items.iter().for_each(|x| walk(x, doc, seen)),
            _ => {}
        }
    }
    let doc = document();
    let mut seen = 0;
    walk(&doc, &doc, &mut seen);
    assert!(seen > 20, "only {seen} references");
}

/// The enums list exactly the strings the engine writes (API.md's values).
#[test]
fn enums_carry_the_api_values() {
    use super::enums::*;
    let cases: [(Vec<&str>, &[&str]); 6] = [
        (
            RecurrencePolicyName::values(),
            &["no_recurrence", "on_expiration", "on_completion"],
        ),
        (
            ActivationPolicyName::values(),
            &["user_action", "fixed_schedule"],
        ),
        (
            AchievementStatusName::values(),
            &["not_started", "inprogress", "expired"],
        ),
        (OutcomeName::values(), &["applied", "duplicate", "rejected"]),
        (
            ReasonName::values(),
            &[
                "campaign_not_running",
                "outside_schedule",
                "future_timestamp",
                "late",
                "already_completed",
                "expired",
                "unknown_event",
                "already_rolled_back",
                "rollback_not_allowed",
                "period_ended",
            ],
        ),
        (
            EventTypeName::values(),
            &[
                "achievement.started",
                "achievement.completed",
                "achievement.expired",
                "achievement.completion_rolled_back",
            ],
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
    // And the document uses them where the API says.
    let doc = document();
    let s = &doc["components"]["schemas"];
    let definition = &s["AchievementDefinition"]["properties"];
    assert_eq!(
        definition["recurrencePolicy"]["$ref"],
        "#/components/schemas/RecurrencePolicy"
    );
    assert_eq!(
        s["RecurrencePolicy"]["enum"],
        serde_json::json!(["no_recurrence", "on_expiration", "on_completion"])
    );
    let result = serde_json::to_string(&s["EventResult"]).expect("JSON");
    assert!(result.contains("#/components/schemas/Reason"), "{result}");
    assert!(s["Reason"]["enum"]
        .as_array()
        .expect("enum")
        .contains(&Value::from("period_ended")));
    let create = &s["CreateAchievement"];
    let required: Vec<&str> = create["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(required, ["name", "title", "description", "target"]);
}
