//! The API bench's client: one HTTP/1.1 keep-alive connection per simulated user, on
//! hyper's connection API, with each answer read into the few fields the client needs.
//! It is a real client on a real socket (the server sees ordinary requests through its
//! whole stack), only without a general-purpose client's pool, redirects and URL parsing,
//! whose CPU shares the same two cores as the server being measured.

use anyhow::{Context as _, Result, bail};
use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

/// One keep-alive connection to a server.
pub(super) struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Connection {
    /// Connects to `base` (`http://HOST:PORT`).
    pub(super) async fn open(base: &str) -> Result<Connection> {
        let authority = base
            .strip_prefix("http://")
            .with_context(|| format!("{base}: not an http:// address"))?
            .trim_end_matches('/');
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .with_context(|| format!("connecting to {base}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake with {base}"))?;
        tokio::spawn(connection);
        Ok(Connection {
            sender,
            host: HeaderValue::from_str(authority)?,
        })
    }

    /// POSTs `body` (JSON) to `path` with `headers`; the status and the body's bytes.
    pub(super) async fn post(
        &mut self,
        path: &str,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .body(Full::new(Bytes::from(body)))?;
        let sent = request.headers_mut();
        sent.insert(HOST, self.host.clone());
        sent.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in headers {
            sent.insert(name, value.clone());
        }
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    /// [`Connection::post`] of `body` serialised, its answer read as a `T`; a status other
    /// than success is an error carrying the answer.
    pub(super) async fn post_json<T: DeserializeOwned>(
        &mut self,
        path: &str,
        headers: &HeaderMap,
        body: &impl serde::Serialize,
    ) -> Result<T> {
        let (status, bytes) = self.post(path, headers, serde_json::to_vec(body)?).await?;
        if !status.is_success() {
            bail!("{path}: {status} {}", String::from_utf8_lossy(&bytes));
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{path}: {}", String::from_utf8_lossy(&bytes)))
    }
}
