//! A posted HTML form (`application/x-www-form-urlencoded`) as its ordered list of
//! name–value pairs: a list field posts one pair per item, so the pairs are kept rather
//! than a map. A body that is not a form becomes the error page.

use axum::extract::{Form, FromRequest, Request};

use super::WebError;

/// The fields of a posted form, in order.
pub struct Posted(pub Vec<(String, String)>);

impl Posted {
    /// The first value of field `name`.
    pub fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of field `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl<S: Send + Sync> FromRequest<S> for Posted {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &S) -> Result<Posted, WebError> {
        match Form::<Vec<(String, String)>>::from_request(request, state).await {
            Ok(Form(pairs)) => Ok(Posted(pairs)),
            Err(rejection) if rejection.status().as_u16() == 413 => Err(WebError::new(
                "payload_too_large",
                super::error::plain_message("payload_too_large"),
            )),
            Err(_) => Err(WebError::bad_request("提交的内容不是表单，或格式不正确。")),
        }
    }
}
