//! The `tower::Service` a `kube::Client` sends its requests to: reads the request body, routes it,
//! and answers JSON (a full body) or, for a watch, a streaming body.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::Value;

use super::Shared;
use super::error::ApiError;
use super::route::{Query, parse_path};
use super::{verbs, watch};

/// The body of every response.
pub(super) type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// Answers requests from the model's store, in the task that awaits the response.
#[derive(Clone)]
pub(super) struct ModelService {
    shared: Arc<Shared>,
}

impl ModelService {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl tower::Service<Request<kube::client::Body>> for ModelService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => return Ok(error_response(&ApiError::bad_request(format!("cannot read the body: {e}")))),
            };
            Ok(respond(&shared, &parts, &body))
        })
    }
}

fn respond(shared: &Arc<Shared>, parts: &http::request::Parts, body: &[u8]) -> Response<ResponseBody> {
    let path = parts.uri.path();
    let query = Query::parse(parts.uri.query());
    let Some(route) = parse_path(path) else {
        return error_response(&ApiError::no_route(path));
    };
    if parts.method == Method::GET && route.name.is_none() && !route.status && query.flag("watch") {
        return match watch::start(Arc::clone(shared), &route, &query) {
            Ok(frames) => response(200, StreamBody::new(frames).boxed_unsync()),
            Err(e) => error_response(&e),
        };
    }
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let req = verbs::Request { method: &parts.method, path, route: &route, query: &query, content_type, body };
    let (result, written) = {
        let mut store = shared.store();
        let before = store.resource_version();
        let result = verbs::handle(&mut store, &req);
        let after = store.resource_version();
        (result, (after != before).then_some(after))
    };
    if let Some(rv) = written {
        shared.changed.send_replace(rv);
    }
    match result {
        Ok((code, value)) => json_response(code, &value),
        Err(e) => error_response(&e),
    }
}

fn json_response(code: u16, value: &Value) -> Response<ResponseBody> {
    match serde_json::to_vec(value) {
        Ok(bytes) => response(code, Full::new(Bytes::from(bytes)).boxed_unsync()),
        Err(e) => error_response(&ApiError::internal(format!("cannot serialize the response: {e}"))),
    }
}

fn error_response(error: &ApiError) -> Response<ResponseBody> {
    // A Status always serializes; the fallback keeps this free of panics all the same.
    let bytes = serde_json::to_vec(&error.to_status()).unwrap_or_else(|_| br#"{"kind":"Status"}"#.to_vec());
    response(error.code, Full::new(Bytes::from(bytes)).boxed_unsync())
}

fn response(code: u16, body: ResponseBody) -> Response<ResponseBody> {
    let mut res = Response::new(body);
    *res.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    res
}
