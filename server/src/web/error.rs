//! Errors of the pages: a status, the stable code and a message in plain Chinese, shown
//! on the error page. Refusals of the engine (jurisdiction, separation of duties, a task
//! someone else finished) are explained in words a caseworker understands; internal
//! errors are logged and shown as a generic message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiuzhu_engine::runtime::EngineError;

use crate::problem::{ApiError, status_of};

/// An error a page handler returns; rendered as the error page.
#[derive(Debug)]
pub struct WebError {
    pub status: StatusCode,
    pub code: &'static str,
    /// What happened, in Chinese, for the page.
    pub message: String,
}

impl WebError {
    pub fn new(code: &'static str, message: impl Into<String>) -> WebError {
        WebError {
            status: status_of(code),
            code,
            message: message.into(),
        }
    }

    pub fn not_found() -> WebError {
        WebError::new("not_found", plain_message("not_found"))
    }

    pub fn bad_request(message: impl Into<String>) -> WebError {
        WebError::new("invalid_request", message)
    }
}

/// The plain-words explanation of a stable error code.
pub fn plain_message(code: &str) -> &'static str {
    match code {
        "not_found" => "没有找到该记录，或者它不在您所在单位的管辖范围内。",
        "forbidden" => {
            "您的角色或所在单位无权办理此事项（只能办理本单位及下级单位、本人角色的事项）。"
        }
        "separation_of_duties" => {
            "按照职责分离的要求，参与过本案入户调查、初审或民主评议的人员不能审核确认本案，请由其他负责人办理。"
        }
        "conflict" => {
            "该事项已被他人认领或办理，您看到的页面已过期。请返回队列刷新后再试，没有任何内容被重复保存。"
        }
        "duplicate" => "该操作已经完成过，没有重复执行。",
        "invalid_data" => "填写的内容有误，请按提示修改。",
        "csrf" => {
            "表单已失效或已经提交过（例如重复点击提交，或使用了过期的页面）。没有任何内容被重复保存，请重新打开页面。"
        }
        "unauthenticated" => "登录已失效，请重新登录。",
        "rate_limited" | "locked" => "登录失败次数过多，请稍后再试。",
        "payload_too_large" => "提交的内容过大。",
        "invalid_request" | "bad_query" | "bad_json" => "请求格式不正确。",
        "method_not_allowed" => "该页面不支持这种操作。",
        "unavailable" => "数据库暂时无法访问，请稍后再试。",
        _ => "服务器未能完成请求，请稍后再试；如果问题持续，请联系系统管理员。",
    }
}

impl From<ApiError> for WebError {
    fn from(error: ApiError) -> WebError {
        // ApiError's detail is English for API clients; pages show the plain words.
        WebError {
            status: error.status,
            code: error.code,
            message: plain_message(error.code).to_string(),
        }
    }
}

impl From<EngineError> for WebError {
    fn from(error: EngineError) -> WebError {
        WebError::from(ApiError::from(error))
    }
}

impl From<crate::db::DbError> for WebError {
    fn from(error: crate::db::DbError) -> WebError {
        WebError::from(ApiError::from(error))
    }
}

impl From<jiuzhu_engine::store::StoreError> for WebError {
    fn from(error: jiuzhu_engine::store::StoreError) -> WebError {
        WebError::from(ApiError::from(error))
    }
}

impl From<tera::Error> for WebError {
    fn from(error: tera::Error) -> WebError {
        WebError::from(ApiError::internal(&error))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let title = match self.status.as_u16() {
            404 => "未找到",
            403 => "无权办理",
            409 => "页面已过期",
            401 => "请登录",
            422 | 400 => "提交有误",
            429 => "请稍后再试",
            _ => "出错了",
        };
        let mut context = tera::Context::new();
        context.insert("title", title);
        context.insert("message", &self.message);
        context.insert("code", self.code);
        context.insert("status", &self.status.as_u16());
        let html = super::render::render("error.html", &context).unwrap_or_else(|_| {
            format!(
                "<!doctype html><meta charset=utf-8><title>{title}</title><p>{}</p>",
                super::render::escape(&self.message)
            )
        });
        let mut response = super::page(html);
        *response.status_mut() = self.status;
        response
    }
}
