//! Notifications: render a `notification` effect with its template, resolve
//! who it goes to, and deliver it over email or a webhook.
//!
//! The dispatcher (which owns the outbox and the loop) uses [`Notifier`] in
//! two steps: [`Notifier::prepare`] turns an effect into one [`Delivery`] per
//! channel — a failure there is a problem of data, templates or the org file
//! and is permanent — and [`Notifier::send`] delivers one, reporting whether
//! a failure is worth retrying by [`crate::retry::RetryPolicy`]. Each
//! delivery has its own key (`<effect id>:<channel>`), so a retry of the
//! webhook does not send the email again.

pub mod channel;
pub mod config;
pub mod deploy_check;
pub mod recipients;
pub mod smtp;
pub mod template;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;

use jiuzhu_engine::effects::typed::Notification;
use jiuzhu_engine::effects::{Outward, TypedEffect};
use jiuzhu_engine::org::Org;
use serde_json::Value as Json;

pub use channel::{Channel, DeliveryError, Disposition, Message};
pub use config::{
    ChannelName, ConfigError, NotifyConfig, Routes, SmtpConfig, TlsMode, WebhookConfig,
};
pub use deploy_check::check_project_templates;
pub use recipients::{Recipient, RecipientError, RecipientKind, Recipients};
pub use smtp::SmtpChannel;
pub use template::{Rendered, TemplateError, TemplateProblem, TemplateSet};
pub use webhook::WebhookChannel;

/// Why an effect cannot be turned into deliveries. None of these heals by
/// waiting: the effect goes to the dead letters with this message.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("not a notification effect: {0}")]
    NotANotification(String),
    #[error(transparent)]
    Recipients(#[from] RecipientError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("notification {effect}: no configured channel reaches {who}")]
    Unreachable { effect: String, who: String },
}

/// One message over one channel: the unit the dispatcher retries.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// `<effect id>:<channel>` (`<effect id>:department:<name>` for a department's
    /// webhook): stable, unique per effect and channel.
    pub key: String,
    pub channel: ChannelName,
    /// The department whose own webhook carries it (`to_department`).
    pub department: Option<String>,
    pub message: Message,
}

/// What [`Notifier::prepare`] found: the deliveries, and the recipients
/// that no configured channel reaches (staff without an address, say), for
/// the dispatcher to log or show.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub deliveries: Vec<Delivery>,
    pub unreachable: Vec<Recipient>,
}

/// Templates, org, channels and routes together.
pub struct Notifier {
    templates: TemplateSet,
    org: Org,
    routes: Routes,
    channels: BTreeMap<ChannelName, Arc<dyn Channel>>,
    /// Each department's webhook (`departments:` of the settings).
    departments: BTreeMap<String, Arc<dyn Channel>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("templates", &self.templates)
            .field("routes", &self.routes)
            .field("channels", &self.channels.keys().collect::<Vec<_>>())
            .field("departments", &self.departments.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier without channels; add them with [`Notifier::with_channel`].
    pub fn new(mut templates: TemplateSet, org: Org, routes: Routes) -> Notifier {
        templates.set_org(&org);
        Notifier {
            templates,
            org,
            routes,
            channels: BTreeMap::new(),
            departments: BTreeMap::new(),
        }
    }

    /// Builds the configured channels, loading their secrets.
    pub fn from_config(
        config: &NotifyConfig,
        templates: TemplateSet,
        org: Org,
    ) -> Result<Notifier, ConfigError> {
        config.check()?;
        let mut notifier = Notifier::new(templates, org, config.routes.clone());
        if let Some(smtp) = &config.smtp {
            let password = smtp.password.as_ref().map(|p| p.load()).transpose()?;
            let channel = SmtpChannel::new(smtp, password.as_ref())?;
            notifier = notifier.with_channel(ChannelName::Email, Arc::new(channel));
        }
        if let Some(webhook) = &config.webhook {
            let channel = WebhookChannel::new(webhook, webhook.secret.load()?)?;
            notifier = notifier.with_channel(ChannelName::Webhook, Arc::new(channel));
        }
        for (name, webhook) in &config.departments {
            let channel = WebhookChannel::new(webhook, webhook.secret.load()?)?;
            notifier = notifier.with_department(name, Arc::new(channel));
        }
        Ok(notifier)
    }

    pub fn with_channel(mut self, name: ChannelName, channel: Arc<dyn Channel>) -> Notifier {
        self.channels.insert(name, channel);
        self
    }

    /// The webhook (or any channel) that reaches department `name`.
    pub fn with_department(mut self, name: &str, channel: Arc<dyn Channel>) -> Notifier {
        self.departments.insert(name.to_string(), channel);
        self
    }

    pub fn templates(&self) -> &TemplateSet {
        &self.templates
    }

    /// Renders an outbox JSON `effect` and splits its recipients over the routed
    /// channels: the effect is read by the engine's typed reading first.
    pub fn prepare(&self, effect: &Json, instance_vars: &Json) -> Result<Plan, NotifyError> {
        let kind = effect.get("type").and_then(Json::as_str);
        if kind.is_some_and(|k| k != "notification") {
            return Err(NotifyError::NotANotification(format!(
                "effect type `{}`",
                kind.unwrap_or_default()
            )));
        }
        let mut payload = effect.clone();
        if let Json::Object(map) = &mut payload {
            map.insert("type".into(), Json::String("notification".into()));
        }
        let outward = Outward::from_json(&payload, None)
            .map_err(|e| NotifyError::NotANotification(e.to_string()))?;
        let TypedEffect::Notification(notice) = &outward.effect else {
            return Err(NotifyError::NotANotification(format!(
                "effect type `{}`",
                outward.kind().as_str()
            )));
        };
        self.prepare_typed(&outward.id, &outward.instance, notice, instance_vars)
    }

    /// Renders a typed notification (effect `effect_id` of case `instance`) and splits
    /// its recipients over the routed channels.
    pub fn prepare_typed(
        &self,
        effect_id: &str,
        instance: &str,
        notice: &Notification,
        instance_vars: &Json,
    ) -> Result<Plan, NotifyError> {
        if effect_id.is_empty() {
            return Err(NotifyError::NotANotification(
                "the effect has no `id`".into(),
            ));
        }
        let template = notice.template.as_str();
        // The template sees the effect's fields as the outbox carries them.
        let effect = Outward {
            id: effect_id.to_string(),
            instance: instance.to_string(),
            effect: TypedEffect::Notification(notice.clone()),
        }
        .to_json();
        let effect = &effect;
        let recipients = Recipients::resolve_typed(effect_id, notice, instance_vars, &self.org)?;
        let rendered = self.templates.render(template, effect, instance_vars)?;

        let mut per_channel: BTreeMap<ChannelName, Vec<Recipient>> = BTreeMap::new();
        let mut per_department: BTreeMap<String, Recipient> = BTreeMap::new();
        let mut unreachable = Vec::new();
        for recipient in recipients {
            let routes = match recipient.kind {
                RecipientKind::Applicant => &self.routes.applicant,
                RecipientKind::Staff => &self.routes.staff,
                RecipientKind::Department => {
                    if self.departments.contains_key(&recipient.name) {
                        per_department.insert(recipient.name.clone(), recipient);
                    } else {
                        unreachable.push(recipient);
                    }
                    continue;
                }
            };
            let mut reached = false;
            for name in routes {
                if let Some(channel) = self.channels.get(name)
                    && channel.reaches(&recipient)
                {
                    per_channel
                        .entry(*name)
                        .or_default()
                        .push(recipient.clone());
                    reached = true;
                }
            }
            if !reached {
                unreachable.push(recipient);
            }
        }
        if per_channel.is_empty() && per_department.is_empty() && !unreachable.is_empty() {
            return Err(NotifyError::Unreachable {
                effect: effect_id.to_string(),
                who: unreachable
                    .iter()
                    .map(|r| r.user_id.clone().unwrap_or_else(|| r.name.clone()))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let instance = Some(instance.to_string()).filter(|i| !i.is_empty());
        let message = |recipients: Vec<Recipient>| Message {
            effect_id: effect_id.to_string(),
            instance: instance.clone(),
            template: template.to_string(),
            subject: rendered.subject.clone(),
            body: rendered.body.clone(),
            recipients,
            effect: effect.clone(),
        };
        let mut deliveries: Vec<Delivery> = per_channel
            .into_iter()
            .map(|(channel, recipients)| Delivery {
                key: format!("{effect_id}:{}", channel.as_str()),
                channel,
                department: None,
                message: message(recipients),
            })
            .collect();
        deliveries.extend(
            per_department
                .into_iter()
                .map(|(department, recipient)| Delivery {
                    key: format!("{effect_id}:department:{department}"),
                    channel: ChannelName::Webhook,
                    department: Some(department),
                    message: message(vec![recipient]),
                }),
        );
        Ok(Plan {
            deliveries,
            unreachable,
        })
    }

    /// Sends one delivery over its channel.
    pub async fn send(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        if let Some(department) = &delivery.department {
            let channel =
                self.departments
                    .get(department)
                    .ok_or_else(|| DeliveryError::NotConfigured {
                        channel: format!("departments.{department}"),
                    })?;
            return channel.send(&delivery.message).await;
        }
        let channel =
            self.channels
                .get(&delivery.channel)
                .ok_or_else(|| DeliveryError::NotConfigured {
                    channel: delivery.channel.as_str().to_string(),
                })?;
        channel.send(&delivery.message).await
    }
}
