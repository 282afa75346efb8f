//! The handlers' tools page (`/console/tools`): reply templates, macros, saved views and
//! their WeCom notice settings; and the API (`/api/v1/templates`, `/api/v1/macros`,
//! `/api/v1/views`, `/api/v1/me/prefs`).

use axum::Form;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{ApiUser, Caller, PageUser};
use super::ops::blocking;
use super::pages::{render, user_view};
use super::views::{Flash, UserView};
use crate::accounts::tools::{Macro, MacroSteps, Prefs, Template, ToolError, View};
use crate::http::AppState;
use crate::http::error::{ApiError, ConsoleError};

impl From<ToolError> for ConsoleError {
    fn from(e: ToolError) -> Self {
        match e {
            ToolError::NotFound => ConsoleError::NotFound,
            ToolError::SharedIsAdmins => ConsoleError::Forbidden,
            ToolError::Storage(c) => ConsoleError::internal(ToolError::Storage(c)),
            e => ConsoleError::BadInput(e.to_string()),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "tools.html", config = "src/http/console/askama.toml")]
pub struct ToolsPage {
    pub user: UserView,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub templates: Vec<Template>,
    pub macros: Vec<Macro>,
    pub views: Vec<View>,
    pub prefs: Prefs,
    pub logins: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MsgQuery {
    pub msg: String,
}

pub async fn page(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Query(q): Query<MsgQuery>,
) -> Result<Html<String>, ConsoleError> {
    let (tools, login) = (state.tools.clone(), c.login.clone());
    let (templates, macros, views, prefs) = blocking(move || {
        Ok((
            tools.templates(&login)?,
            tools.macros(&login)?,
            tools.views(&login)?,
            tools.prefs(&login)?,
        ))
    })
    .await?;
    let flash = (!q.msg.is_empty()).then(|| Flash {
        kind: "ok",
        text: "已保存".into(),
    });
    render(ToolsPage {
        user: user_view(&c),
        csrf: c.csrf.clone().unwrap_or_default(),
        flash,
        templates,
        macros,
        views,
        prefs,
        logins: super::ops::logins(&state)?,
    })
}

/// One form for every tool change: `what` says which.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ToolForm {
    #[serde(rename = "_csrf")]
    pub csrf: String,
    pub name: String,
    pub body: String,
    pub shared: Option<String>,
    pub query: String,
    pub template: String,
    pub status: String,
    pub reason: String,
    pub assign_me: Option<String>,
    pub priority: String,
    pub wecom_userid: String,
    pub notify: Option<String>,
    pub default_view: String,
}

fn steps_of(f: &ToolForm) -> MacroSteps {
    MacroSteps {
        template: f.template.parse().ok(),
        status: (!f.status.is_empty()).then(|| f.status.clone()),
        reason: f.reason.trim().to_owned(),
        assign_me: f.assign_me.is_some(),
        priority: (!f.priority.is_empty()).then(|| f.priority.clone()),
    }
}

/// `POST /console/tools/{what}` (`template`, `macro`, `view`, `prefs`) and
/// `/console/tools/{what}/{id}/delete`.
pub async fn change(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Path(what): Path<String>,
    Form(f): Form<ToolForm>,
) -> Result<Response, ConsoleError> {
    c.check_csrf(Some(&f.csrf))?;
    apply(&state, &c, &what, None, &f).await?;
    Ok(Redirect::to("/console/tools?msg=saved").into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Path((what, id)): Path<(String, u64)>,
    Form(f): Form<ToolForm>,
) -> Result<Response, ConsoleError> {
    c.check_csrf(Some(&f.csrf))?;
    apply(&state, &c, &what, Some(id), &f).await?;
    Ok(Redirect::to("/console/tools?msg=saved").into_response())
}

async fn apply(
    state: &AppState,
    c: &Caller,
    what: &str,
    delete: Option<u64>,
    f: &ToolForm,
) -> Result<Value, ConsoleError> {
    let (tools, tickets) = (state.tools.clone(), state.tickets.clone());
    let (login, admin) = (c.login.clone(), c.is_admin());
    let shared = f.shared.is_some();
    let (name, body, query) = (f.name.clone(), f.body.clone(), f.query.clone());
    let steps = steps_of(f);
    let prefs_in = (
        f.wecom_userid.trim().to_owned(),
        f.notify.is_some(),
        f.default_view.parse::<u64>().ok(),
    );
    let what = what.to_owned();
    blocking(move || {
        Ok(match (what.as_str(), delete) {
            ("template", None) => json!(tools.add_template(&login, admin, shared, &name, &body)?),
            ("template", Some(id)) => json!(tools.delete_template(&login, admin, id)?),
            ("macro", None) => json!(tools.add_macro(&login, admin, shared, &name, steps)?),
            ("macro", Some(id)) => json!(tools.delete_macro(&login, admin, id)?),
            ("view", None) => json!(tools.add_view(&login, admin, shared, &name, &query)?),
            ("view", Some(id)) => json!(tools.delete_view(&login, admin, id)?),
            ("prefs", None) => {
                let mut p = tools.prefs(&login)?;
                (p.wecom_userid, p.notify, p.default_view) = prefs_in;
                tools.set_prefs(&login, &p)?;
                // The ticket service notifies through this mapping.
                let contact =
                    (p.notify && !p.wecom_userid.is_empty()).then_some(p.wecom_userid.as_str());
                tickets.set_handler_contact(&login, contact)?;
                json!(p)
            }
            _ => return Err(ConsoleError::NotFound),
        })
    })
    .await
}

// --- API -------------------------------------------------------------------------------------

fn csrf(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-csrf-token").and_then(|v| v.to_str().ok())
}

async fn api_list(state: AppState, c: Caller, what: &'static str) -> Result<Json<Value>, ApiError> {
    let (tools, login) = (state.tools.clone(), c.login.clone());
    let v = blocking(move || {
        Ok(match what {
            "templates" => json!({ "templates": tools.templates(&login)? }),
            "macros" => json!({ "macros": tools.macros(&login)? }),
            "views" => json!({ "views": tools.views(&login)? }),
            _ => return Err(ConsoleError::NotFound),
        })
    })
    .await?;
    Ok(Json(v))
}

/// `POST /api/v1/{templates|macros|views}`: `{"name","body"|"steps"|"query","shared"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ToolBody {
    pub name: String,
    pub body: String,
    pub query: String,
    pub shared: bool,
    pub steps: MacroSteps,
}

async fn api_add(
    state: AppState,
    c: Caller,
    headers: HeaderMap,
    what: &'static str,
    b: ToolBody,
) -> Result<Json<Value>, ApiError> {
    c.check_csrf(csrf(&headers))?;
    let f = ToolForm {
        name: b.name,
        body: b.body,
        query: b.query,
        shared: b.shared.then(String::new),
        template: b.steps.template.map(|t| t.to_string()).unwrap_or_default(),
        status: b.steps.status.unwrap_or_default(),
        reason: b.steps.reason,
        assign_me: b.steps.assign_me.then(String::new),
        priority: b.steps.priority.unwrap_or_default(),
        ..ToolForm::default()
    };
    Ok(Json(apply(&state, &c, what, None, &f).await?))
}

async fn api_delete(
    state: AppState,
    c: Caller,
    headers: HeaderMap,
    what: &'static str,
    id: u64,
) -> Result<Json<Value>, ApiError> {
    c.check_csrf(csrf(&headers))?;
    apply(&state, &c, what, Some(id), &ToolForm::default()).await?;
    Ok(Json(json!({ "ok": "deleted" })))
}

macro_rules! tool_routes {
    ($kind:literal, $plural:literal, $list:ident, $add:ident, $del:ident) => {
        pub async fn $list(
            State(state): State<AppState>,
            ApiUser(c): ApiUser,
        ) -> Result<Json<Value>, ApiError> {
            api_list(state, c, $plural).await
        }
        pub async fn $add(
            State(state): State<AppState>,
            ApiUser(c): ApiUser,
            headers: HeaderMap,
            Json(b): Json<ToolBody>,
        ) -> Result<Json<Value>, ApiError> {
            api_add(state, c, headers, $kind, b).await
        }
        pub async fn $del(
            State(state): State<AppState>,
            ApiUser(c): ApiUser,
            headers: HeaderMap,
            Path(id): Path<u64>,
        ) -> Result<Json<Value>, ApiError> {
            api_delete(state, c, headers, $kind, id).await
        }
    };
}

tool_routes!(
    "template",
    "templates",
    api_list_templates,
    api_add_template,
    api_delete_template
);
tool_routes!(
    "macro",
    "macros",
    api_list_macros,
    api_add_macro,
    api_delete_macro
);
tool_routes!(
    "view",
    "views",
    api_list_views,
    api_add_view,
    api_delete_view
);

/// `PUT /api/v1/me/prefs`: `{"wecom_userid","notify","default_view"}`.
pub async fn api_prefs(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    Json(p): Json<Prefs>,
) -> Result<Json<Value>, ApiError> {
    c.check_csrf(csrf(&headers))?;
    let f = ToolForm {
        wecom_userid: p.wecom_userid,
        notify: p.notify.then(String::new),
        default_view: p.default_view.map(|v| v.to_string()).unwrap_or_default(),
        ..ToolForm::default()
    };
    Ok(Json(apply(&state, &c, "prefs", None, &f).await?))
}
