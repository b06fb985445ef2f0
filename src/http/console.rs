//! The web console: the static files in `console/` at the repository's top,
//! compiled into the binary and served at `/console` (no auth: the page asks
//! for the management key and sends it with each API call itself).
//!
//! Owns: the asset table, their content types and the security headers (a
//! strict Content-Security-Policy: the console loads nothing from other
//! origins and runs no inline code). Knows nothing about the API the page
//! calls.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use super::error::{ApiError, Source};
use super::routes::Routes;

/// Everything from this origin only; no inline scripts or styles, no
/// frames, no plugins, no form posts elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; \
     img-src 'self' data:; script-src 'self'; style-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../console/index.html"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/console.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/console.css"),
    },
];

pub fn configure(r: &mut Routes) {
    r.get("/console", index)
        .get("/console/", index_dir)
        .get("/console/{file}", asset);
}

fn serve(asset: &Asset) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // Small files, and a new binary may bring new ones: always revalidate.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(asset.body)
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The console's page.
#[utoipa::path(get, path = "/console", tag = "operations", responses((status = 200, description = "The web console's page (it asks for the management key)", content_type = "text/html", body = String)))]
async fn index() -> Result<HttpResponse, ApiError> {
    find("index.html").map(serve).ok_or_else(ApiError::internal)
}

/// The console's page, at the directory's own address.
#[utoipa::path(get, path = "/console/", tag = "operations", responses((status = 200, description = "The web console's page", content_type = "text/html", body = String)))]
async fn index_dir() -> Result<HttpResponse, ApiError> {
    index().await
}

/// One of the console's files.
#[utoipa::path(get, path = "/console/{file}", tag = "operations", params(("file" = String, Path, description = "index.html, console.js or console.css")), responses((status = 200, description = "The file, with its content type", content(("text/html"), ("text/javascript"), ("text/css")))))]
async fn asset(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let name = req.match_info().get("file").unwrap_or("");
    find(name).map(serve).ok_or_else(|| {
        ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            format!("the console has no file named '{name}'"),
            Some(Source::Parameter("file".into())),
        )
    })
}

#[cfg(test)]
mod tests {
    use actix_web::{test as web_test, web, App};

    use super::*;

    async fn get(path: &str) -> (u16, Option<String>, Option<String>, Vec<u8>) {
        let app = web_test::init_service(
            App::new()
                .configure(|cfg| configure(&mut Routes::new(cfg)))
                .default_service(web::to(crate::http::not_found)),
        )
        .await;
        let req = web_test::TestRequest::get().uri(path).to_request();
        let res = web_test::call_service(&app, req).await;
        let header = |name: header::HeaderName| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let status = res.status().as_u16();
        let content_type = header(header::CONTENT_TYPE);
        let csp = header(header::CONTENT_SECURITY_POLICY);
        let body = web_test::read_body(res).await.to_vec();
        (status, content_type, csp, body)
    }

    #[actix_web::test]
    async fn every_asset_is_served_with_its_type_and_the_policy() {
        let cases = [
            ("/console", "text/html", "<!doctype html>"),
            ("/console/", "text/html", "<!doctype html>"),
            ("/console/index.html", "text/html", "<!doctype html>"),
            ("/console/console.js", "text/javascript", "\"use strict\""),
            ("/console/console.css", "text/css", ":root"),
        ];
        for (path, content_type, starts) in cases {
            let (status, ct, csp, body) = get(path).await;
            assert_eq!(status, 200, "{path}");
            assert!(
                ct.as_deref().is_some_and(|c| c.starts_with(content_type)),
                "{path}: {ct:?}"
            );
            let csp = csp.unwrap_or_default();
            assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
            assert!(csp.contains("connect-src 'self'"), "{path}: {csp}");
            let text = String::from_utf8_lossy(&body);
            assert!(
                text.trim_start().starts_with(starts),
                "{path}: starts {:?}",
                &text[..text.len().min(40)]
            );
        }
    }

    #[actix_web::test]
    async fn an_unknown_file_is_a_404_in_the_api_error_shape() {
        for path in ["/console/nope.js", "/console/..%2Fmain.rs", "/console/a/b"] {
            let (status, ct, _, body) = get(path).await;
            assert_eq!(status, 404, "{path}");
            assert!(
                ct.as_deref()
                    .is_some_and(|c| c.starts_with("application/json")),
                "{path}: {ct:?}"
            );
            let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(v["StatusCode"], 404, "{path}: {v}");
            assert!(v["message"].is_string(), "{path}: {v}");
        }
    }

    #[test]
    fn the_page_loads_only_its_own_files() {
        let html = String::from_utf8_lossy(ASSETS[0].body);
        for needle in ["/console/console.js", "/console/console.css"] {
            assert!(html.contains(needle), "index.html does not load {needle}");
        }
        // Nothing inline: the policy would block it.
        assert!(!html.contains("<script>") && !html.contains("style="));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
