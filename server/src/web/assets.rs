//! Static files of the pages, embedded in the binary: the style sheet, the pages' small
//! script, and the scripts vendored from npm (`server/static/vendor/VERSIONS` says which
//! versions, with their licences beside them).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Path under `/static/`, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/app.css"),
    ),
    (
        "print.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/print.css"),
    ),
    (
        "admin.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/admin.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/app.js"),
    ),
    (
        "vendor/htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/htmx.min.js"),
    ),
    (
        "vendor/mermaid.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/mermaid.min.js"),
    ),
    (
        "vendor/VERSIONS",
        "text/plain; charset=utf-8",
        include_bytes!("../../static/vendor/VERSIONS"),
    ),
    (
        "vendor/htmx.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../static/vendor/htmx.LICENSE"),
    ),
    (
        "vendor/mermaid.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../static/vendor/mermaid.LICENSE"),
    ),
];

/// `GET /static/{path}`: an embedded file, cached for a day (the files change only with
/// the binary).
pub async fn serve(Path(path): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == path) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                ),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
