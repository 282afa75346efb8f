//! The admins' editors in the console (`/console/admin/kb…`, `/console/admin/scripts…`,
//! `/console/admin/audit`) and their API (`/api/v1/admin/kb…`, `/api/v1/admin/scripts…`,
//! `/api/v1/admin/audit`): admins, or scripts with the API token.

use askama::Template;
use axum::Form;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AdminPage, ApiUser, Caller};
use super::ops::blocking;
use super::pages::{render, user_view};
use super::views::{Flash, UserView};
use crate::editor::hits::{self, Ranking};
use crate::editor::{EditError, EntryInput, LineError};
use crate::http::AppState;
use crate::http::error::{ApiError, ConsoleError};
use crate::kb::entry::Entry;
use crate::kb::log::{Decided, Feedback};

const DAY_MS: i64 = 86_400_000;

// --- errors ----------------------------------------------------------------------------------

fn status_of(e: &EditError) -> (StatusCode, &'static str) {
    match e {
        EditError::BadId | EditError::BadFile | EditError::Empty(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "bad_input")
        }
        EditError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        EditError::Duplicate(_) => (StatusCode::CONFLICT, "duplicate"),
        EditError::Stale => (StatusCode::CONFLICT, "stale"),
        EditError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        EditError::Io(_) | EditError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// An editor's refusal as JSON: `{"error", "message", "errors": [{"line","message"}]}`.
pub struct EditRejection(EditError);

impl From<EditError> for EditRejection {
    fn from(e: EditError) -> Self {
        EditRejection(e)
    }
}

impl IntoResponse for EditRejection {
    fn into_response(self) -> Response {
        let (status, code) = status_of(&self.0);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            return ApiError(ConsoleError::internal(self.0)).into_response();
        }
        let errors = match &self.0 {
            EditError::Invalid(v) => v.clone(),
            _ => Vec::new(),
        };
        (
            status,
            Json(json!({ "error": code, "message": self.0.to_string(), "errors": errors })),
        )
            .into_response()
    }
}

/// Either a console refusal (auth, CSRF, bad JSON) or an editor's.
pub enum EditApiError {
    Console(ApiError),
    Edit(EditRejection),
}

impl<E: Into<ConsoleError>> From<E> for EditApiError {
    fn from(e: E) -> Self {
        EditApiError::Console(ApiError(e.into()))
    }
}

impl From<EditRejection> for EditApiError {
    fn from(e: EditRejection) -> Self {
        EditApiError::Edit(e)
    }
}

impl IntoResponse for EditApiError {
    fn into_response(self) -> Response {
        match self {
            EditApiError::Console(e) => e.into_response(),
            EditApiError::Edit(e) => e.into_response(),
        }
    }
}

/// Admins, or the API token; with the CSRF token on a session's writes.
fn editor_caller(c: &Caller, headers: &HeaderMap, write: bool) -> Result<(), ConsoleError> {
    if !(c.is_admin() || c.session_id.is_none()) {
        return Err(ConsoleError::Forbidden);
    }
    if write {
        c.check_csrf(headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))?;
    }
    Ok(())
}

async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EditError> + Send + 'static,
) -> Result<T, EditApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| EditApiError::Edit(e.into())),
        Err(e) => Err(ConsoleError::internal(e).into()),
    }
}

fn json_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, ConsoleError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ConsoleError::BadInput(format!("请求体不是有效的 JSON：{e}")))
}

// --- FAQ entries -----------------------------------------------------------------------------

/// Hits of each entry over the last 30 days (answered or chosen).
fn hits_30d(state: &AppState) -> Result<std::collections::HashMap<String, usize>, ConsoleError> {
    let since = crate::util::unix_millis() - 30 * DAY_MS;
    let r = state.faq_log.report(since, usize::MAX)?;
    Ok(r.hot.into_iter().collect())
}

fn entry_json(e: &Entry, hits: usize) -> Value {
    json!({
        "id": e.id, "question": e.question, "similar": e.similar, "system": e.system,
        "tags": e.tags, "draft": e.draft, "answer": e.answer, "path": e.path, "hits_30d": hits,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KbFilter {
    pub q: String,
    pub system: String,
    pub tag: String,
    /// `1`: drafts only.
    pub draft: String,
    /// `1`: entries with no hit in 30 days.
    pub never: String,
    pub msg: String,
}

fn filtered(
    entries: Vec<Entry>,
    f: &KbFilter,
    hits: &std::collections::HashMap<String, usize>,
) -> Vec<Entry> {
    let q = f.q.trim().to_lowercase();
    entries
        .into_iter()
        .filter(|e| {
            (q.is_empty()
                || e.id.contains(&q)
                || e.phrasings().any(|p| p.to_lowercase().contains(&q))
                || e.answer.to_lowercase().contains(&q))
                && (f.system.is_empty() || e.system == f.system)
                && (f.tag.is_empty() || e.tags.contains(&f.tag))
                && (f.draft != "1" || e.draft)
                && (f.never != "1" || hits.get(&e.id).copied().unwrap_or(0) == 0)
        })
        .collect()
}

pub async fn api_kb_list(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    Query(f): Query<KbFilter>,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, false)?;
    let hits = hits_30d(&state)?;
    let editor = state.editor.clone();
    let loaded = run(move || editor.entries()).await?;
    let mut entries = filtered(loaded.entries, &f, &hits);
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(json!({
        "entries": entries.iter().map(|e| entry_json(e, hits.get(&e.id).copied().unwrap_or(0))).collect::<Vec<_>>(),
        "errors": loaded.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })))
}

pub async fn api_kb_get(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, false)?;
    let editor = state.editor.clone();
    let (e, version) = run(move || editor.entry(&id)).await?;
    let hits = hits_30d(&state)?.get(&e.id).copied().unwrap_or(0);
    let mut v = entry_json(&e, hits);
    v["version"] = version.into();
    Ok(Json(v))
}

pub async fn api_kb_put(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, EditApiError> {
    editor_caller(&c, &headers, true)?;
    let input: EntryInput = json_body(&body)?;
    let (editor, login) = (state.editor.clone(), c.login.clone());
    let saved = run(move || editor.put_entry(&id, &input, &login)).await?;
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(saved))).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VersionBody {
    pub version: String,
}

pub async fn api_kb_delete(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<VersionBody>,
    body: Bytes,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, true)?;
    let b: VersionBody = json_body(&body)?;
    let version = if b.version.is_empty() {
        q.version
    } else {
        b.version
    };
    let (editor, login, shown) = (state.editor.clone(), c.login.clone(), id.clone());
    run(move || editor.delete_entry(&id, &version, &login)).await?;
    Ok(Json(json!({ "ok": "deleted", "id": shown })))
}

/// A hit test: `{"q"}`, optionally with the entry being edited (`{"entry": {"id", …}}`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TestBody {
    pub q: String,
    pub entry: Option<DraftEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DraftEntry {
    pub id: String,
    #[serde(flatten)]
    pub fields: EntryInput,
}

/// The last 30 days' questions (distinct, masked as logged), newest first, at most 300.
fn recent_questions(state: &AppState) -> Result<Vec<String>, ConsoleError> {
    let since = crate::util::unix_millis() - 30 * DAY_MS;
    let mut out: Vec<String> = Vec::new();
    for (_, log) in state.faq_log.since(since)? {
        if !out.contains(&log.question) {
            out.push(log.question);
        }
        if out.len() >= 300 {
            break;
        }
    }
    Ok(out)
}

pub async fn api_kb_test(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, false)?;
    let t: TestBody = json_body(&body)?;
    let (kb, cfg, dir) = (
        state.kb.clone(),
        state.cfg.faq.clone(),
        state.cfg.paths.kb_dir.clone(),
    );
    let questions = match t.entry {
        Some(_) => recent_questions(&state)?,
        None => Vec::new(),
    };
    let result = blocking(move || {
        let live = kb.current();
        let live_rank = hits::rank(&live, &cfg, &t.q);
        let Some(d) = t.entry else {
            return Ok(json!({ "live": live_rank }));
        };
        if !crate::editor::valid_id(&d.id) {
            return Err(ConsoleError::BadInput(EditError::BadId.to_string()));
        }
        let draft = Entry {
            id: d.id.clone(),
            question: d.fields.question.trim().to_owned(),
            similar: d.fields.similar.clone(),
            system: d.fields.system.clone(),
            tags: d.fields.tags.clone(),
            draft: false,
            answer: d.fields.answer.clone(),
            path: String::new(),
        };
        let index = hits::index_with(&dir, &draft).map_err(ConsoleError::BadInput)?;
        let draft_rank: Ranking = hits::rank(&index, &cfg, &t.q);
        let changed = hits::changed(&live, &index, &cfg, &questions);
        Ok(json!({ "live": live_rank, "draft": draft_rank, "changed": changed }))
    })
    .await?;
    Ok(Json(result))
}

pub async fn api_kb_trash(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, false)?;
    let editor = state.editor.clone();
    let trash = run(move || editor.trash()).await?;
    Ok(Json(json!({
        "trash": trash.iter().map(|(f, id, q)| json!({"file": f, "id": id, "question": q})).collect::<Vec<_>>()
    })))
}

pub async fn api_kb_restore(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, true)?;
    let (editor, login) = (state.editor.clone(), c.login.clone());
    let id = run(move || editor.restore_trash(&name, &login)).await?;
    Ok(Json(json!({ "ok": "restored", "id": id })))
}

/// Questions the FAQ could not answer (with how often), and answers rated 未解决 (with the
/// entry given).
type Unanswered = (Vec<(String, usize)>, Vec<(String, String)>);

/// Questions the FAQ could not answer, and answers rated 未解决 with the entry given.
fn unanswered(state: &AppState) -> Result<Unanswered, ConsoleError> {
    let since = crate::util::unix_millis() - 30 * DAY_MS;
    let report = state.faq_log.report(since, 50)?;
    let mut unsolved = Vec::new();
    for (_, log) in state.faq_log.since(since)? {
        if log.feedback == Some(Feedback::Unsolved)
            && let Decided::Answered { entry } | Decided::Chosen { entry } = &log.decided
        {
            unsolved.push((log.question.clone(), entry.clone()));
        }
    }
    Ok((report.unanswered, unsolved))
}

pub async fn api_unanswered(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, false)?;
    let st = state.clone();
    let (unanswered, unsolved) = blocking(move || unanswered(&st)).await?;
    Ok(Json(json!({
        "unanswered": unanswered.iter().map(|(q, n)| json!({"question": q, "count": n})).collect::<Vec<_>>(),
        "unsolved": unsolved.iter().map(|(q, e)| json!({"question": q, "entry": e})).collect::<Vec<_>>(),
    })))
}

// --- scripts ---------------------------------------------------------------------------------

pub async fn api_scripts(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, false)?;
    let editor = state.editor.clone();
    let files = run(move || editor.script_files()).await?;
    Ok(Json(json!({
        "files": files.iter().map(|(f, v)| json!({"file": f, "version": v})).collect::<Vec<_>>()
    })))
}

pub async fn api_script_get(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, false)?;
    let editor = state.editor.clone();
    let (text, version) = run(move || editor.script(&file)).await?;
    Ok(Json(json!({ "text": text, "version": version })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScriptBody {
    pub text: String,
    pub version: String,
    /// Dry run: the agent's inputs, in order.
    pub inputs: Vec<String>,
}

pub async fn api_script_put(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    Path(file): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, true)?;
    let b: ScriptBody = json_body(&body)?;
    let (editor, login) = (state.editor.clone(), c.login.clone());
    let version = run(move || editor.put_script(&file, &b.text, &b.version, &login)).await?;
    Ok(Json(json!({ "ok": "saved", "version": version })))
}

/// Play the report flow of the draft script as an agent would, without filing anything.
pub async fn api_script_dry_run(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    Path(file): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, false)?;
    let b: ScriptBody = json_body(&body)?;
    let (editor, customer_no) = (
        state.editor.clone(),
        state.cfg.tickets.customer_no_pattern.clone(),
    );
    let turns = run(move || {
        let set = editor.check_script(&file, &b.text)?;
        Ok(dry_run(&set, &customer_no, &b.inputs))
    })
    .await?;
    Ok(Json(json!({ "turns": turns })))
}

/// The bot's replies to `inputs` in the report flow of `set` (the first reply: its start).
pub fn dry_run(
    set: &crate::script::ScriptSet,
    customer_no: &regex::Regex,
    inputs: &[String],
) -> Vec<Value> {
    use crate::script::eval::{self, Action, Answers, Ctx, Input};
    let Some(flow) = set.report_flow() else {
        return vec![json!({"input": "", "replies": ["（没有提单流程）"]})];
    };
    let ctx = Ctx {
        customer_no,
        group: false,
    };
    let (mut dialog, replies) = eval::start(flow, Answers::default(), ctx);
    let mut turns = vec![json!({"input": "提单", "replies": replies})];
    for input in inputs {
        let images = if input.trim() == "[截图]" {
            vec!["0".repeat(64)]
        } else {
            Vec::new()
        };
        let text = (images.is_empty()).then_some(input.as_str());
        let out = eval::advance(flow, &mut dialog, &Input { text, images }, ctx, &set.global);
        let mut replies = out.replies;
        match out.action {
            Action::Submit => replies.push("（演练：此处会提交工单，演练不会真的提交）".into()),
            Action::Cancel => replies.push("（演练：对话结束）".into()),
            Action::Continue => {}
        }
        let done = out.action != Action::Continue;
        turns.push(json!({"input": input, "replies": replies}));
        if done {
            break;
        }
    }
    turns
}

// --- history ---------------------------------------------------------------------------------

pub async fn api_audit(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, false)?;
    let editor = state.editor.clone();
    let changes = run(move || Ok(editor.audit(200)?)).await?;
    Ok(Json(json!({ "changes": changes })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileQuery {
    pub file: String,
}

pub async fn api_versions(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    Query(q): Query<FileQuery>,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, false)?;
    let editor = state.editor.clone();
    let versions = run(move || Ok(editor.versions(&q.file)?)).await?;
    Ok(Json(json!({ "versions": versions })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RollbackBody {
    pub file: String,
    pub seq: u64,
}

pub async fn api_rollback(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, EditApiError> {
    editor_caller(&c, &headers, true)?;
    let b: RollbackBody = json_body(&body)?;
    let (editor, login) = (state.editor.clone(), c.login.clone());
    let version = run(move || editor.rollback(&b.file, b.seq, &login)).await?;
    Ok(Json(json!({ "ok": "restored", "version": version })))
}

// --- pages -----------------------------------------------------------------------------------

pub struct EntryRow {
    pub id: String,
    pub question: String,
    pub system: String,
    pub tags: String,
    pub draft: bool,
    pub hits: usize,
}

#[derive(Template)]
#[template(path = "kb_list.html", config = "src/http/console/askama.toml")]
pub struct KbListPage {
    pub user: UserView,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub q: String,
    pub never: bool,
    pub drafts: bool,
    pub rows: Vec<EntryRow>,
    pub errors: Vec<String>,
    pub unanswered: Vec<(String, usize)>,
    pub unsolved: Vec<(String, String)>,
    pub trash: Vec<(String, String, String)>,
    pub ids: Vec<String>,
    /// The FAQ report of the last 30 days: deflection and the hottest entries.
    pub deflection: String,
    pub questions: usize,
    pub hot: Vec<(String, usize)>,
}

fn flash(code: &str) -> Option<Flash> {
    let text = match code {
        "saved" => "已保存，已生效",
        "deleted" => "已移到回收站",
        "restored" => "已恢复",
        "rolled_back" => "已恢复到所选版本",
        _ => return None,
    };
    Some(Flash {
        kind: "ok",
        text: text.into(),
    })
}

pub async fn kb_page(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
    Query(f): Query<KbFilter>,
) -> Result<Html<String>, ConsoleError> {
    let hits = hits_30d(&state)?;
    let (editor, st) = (state.editor.clone(), state.clone());
    let (loaded, trash, (unanswered, unsolved)) = blocking(move || {
        let loaded = editor
            .entries()
            .map_err(|e| ConsoleError::BadInput(e.to_string()))?;
        let trash = editor
            .trash()
            .map_err(|e| ConsoleError::BadInput(e.to_string()))?;
        Ok((loaded, trash, unanswered(&st)?))
    })
    .await?;
    let mut ids: Vec<String> = loaded.entries.iter().map(|e| e.id.clone()).collect();
    ids.sort();
    let since = crate::util::unix_millis() - 30 * DAY_MS;
    let report = state.faq_log.report(since, 10)?;
    let mut hot: Vec<(String, usize)> = report.hot.clone();
    hot.truncate(10);
    let errors = loaded.errors.iter().map(ToString::to_string).collect();
    let mut entries = filtered(loaded.entries, &f, &hits);
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    render(KbListPage {
        user: user_view(&c),
        csrf: c.csrf.clone().unwrap_or_default(),
        flash: flash(&f.msg),
        q: f.q.clone(),
        never: f.never == "1",
        drafts: f.draft == "1",
        rows: entries
            .iter()
            .map(|e| EntryRow {
                id: e.id.clone(),
                question: e.question.clone(),
                system: e.system.clone(),
                tags: e.tags.join("、"),
                draft: e.draft,
                hits: hits.get(&e.id).copied().unwrap_or(0),
            })
            .collect(),
        errors,
        unanswered,
        unsolved,
        trash,
        ids,
        deflection: if report.questions == 0 {
            "—".into()
        } else {
            format!("{:.0}%", report.deflection_rate() * 100.0)
        },
        questions: report.questions,
        hot,
    })
}

#[derive(Template)]
#[template(path = "kb_edit.html", config = "src/http/console/askama.toml")]
pub struct KbEditPage {
    pub user: UserView,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub new: bool,
    pub id: String,
    pub version: String,
    pub question: String,
    pub similar: String,
    pub system: String,
    pub tags: String,
    pub answer: String,
    pub draft: bool,
    pub versions: Vec<(u64, String, String)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EditQuery {
    pub id: String,
    /// A new entry's first question (from the unanswered list).
    pub question: String,
    pub msg: String,
}

fn versions_view(state: &AppState, file: &str) -> Result<Vec<(u64, String, String)>, ConsoleError> {
    let clock = super::pages::clock(state);
    Ok(state
        .editor
        .versions(file)?
        .into_iter()
        .map(|v| (v.seq, clock.time(v.at), v.login))
        .collect())
}

pub async fn kb_edit(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
    Query(q): Query<EditQuery>,
) -> Result<Html<String>, ConsoleError> {
    let mut page = KbEditPage {
        user: user_view(&c),
        csrf: c.csrf.clone().unwrap_or_default(),
        flash: flash(&q.msg),
        new: q.id.is_empty(),
        id: q.id.clone(),
        version: String::new(),
        question: q.question.clone(),
        similar: String::new(),
        system: String::new(),
        tags: String::new(),
        answer: String::new(),
        draft: false,
        versions: Vec::new(),
    };
    if !q.id.is_empty() {
        let editor = state.editor.clone();
        let id = q.id.clone();
        let (e, version) = blocking(move || {
            editor.entry(&id).map_err(|e| match e {
                EditError::NotFound => ConsoleError::NotFound,
                e => ConsoleError::BadInput(e.to_string()),
            })
        })
        .await?;
        page.version = version;
        page.question = e.question;
        page.similar = e.similar.join("\n");
        page.system = e.system;
        page.tags = e.tags.join("、");
        page.answer = e.answer;
        page.draft = e.draft;
        page.versions = versions_view(&state, &format!("kb/{}.md", q.id))?;
    }
    render(page)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EntryForm {
    #[serde(rename = "_csrf")]
    pub csrf: String,
    pub id: String,
    pub version: String,
    pub question: String,
    /// One per line.
    pub similar: String,
    pub system: String,
    /// Separated by 、 or commas.
    pub tags: String,
    pub answer: String,
    pub draft: Option<String>,
}

pub async fn kb_save(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
    Form(f): Form<EntryForm>,
) -> Result<Response, ConsoleError> {
    c.check_csrf(Some(&f.csrf))?;
    let input = EntryInput {
        question: f.question.clone(),
        similar: f.similar.lines().map(str::to_owned).collect(),
        system: f.system.clone(),
        tags: f.tags.split(['、', ',', '，']).map(str::to_owned).collect(),
        answer: f.answer.clone(),
        draft: f.draft.is_some(),
        version: f.version.clone(),
    };
    let (editor, login, id) = (
        state.editor.clone(),
        c.login.clone(),
        f.id.trim().to_owned(),
    );
    let saved = blocking(move || Ok(editor.put_entry(&id, &input, &login))).await?;
    match saved {
        Ok(s) => Ok(
            Redirect::to(&format!("/console/admin/kb/edit?id={}&msg=saved", s.id)).into_response(),
        ),
        Err(e) => {
            let (status, _) = status_of(&e);
            let page = KbEditPage {
                user: user_view(&c),
                csrf: c.csrf.clone().unwrap_or_default(),
                flash: Some(Flash {
                    kind: "error",
                    text: e.to_string(),
                }),
                new: f.version.is_empty(),
                id: f.id,
                version: f.version,
                question: f.question,
                similar: f.similar,
                system: f.system,
                tags: f.tags,
                answer: f.answer,
                draft: f.draft.is_some(),
                versions: Vec::new(),
            };
            Ok((status, render(page)?).into_response())
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActForm {
    #[serde(rename = "_csrf")]
    pub csrf: String,
    pub id: String,
    pub version: String,
    pub name: String,
    pub file: String,
    pub seq: u64,
    /// Add an unanswered question to this entry as a similar question.
    pub question: String,
}

fn edit_to_console(e: EditError) -> ConsoleError {
    match e {
        EditError::NotFound => ConsoleError::NotFound,
        e @ (EditError::Io(_) | EditError::Storage(_)) => ConsoleError::internal(e),
        e => ConsoleError::BadInput(e.to_string()),
    }
}

/// An admin's form action on the editor: CSRF checked, `op` run off the async threads
/// with the caller's login and the form, its refusal shown as the editor's message.
async fn form_action<T: Send + 'static>(
    state: &AppState,
    c: &Caller,
    f: ActForm,
    op: impl FnOnce(&crate::editor::Editor, &str, ActForm) -> Result<T, EditError> + Send + 'static,
) -> Result<T, ConsoleError> {
    c.check_csrf(Some(&f.csrf))?;
    let (editor, login) = (state.editor.clone(), c.login.clone());
    blocking(move || op(&editor, &login, f).map_err(edit_to_console)).await
}

pub async fn kb_delete(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
    Form(f): Form<ActForm>,
) -> Result<Response, ConsoleError> {
    form_action(&state, &c, f, |e, login, f| {
        e.delete_entry(&f.id, &f.version, login)
    })
    .await?;
    Ok(Redirect::to("/console/admin/kb?msg=deleted").into_response())
}

pub async fn kb_restore(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
    Form(f): Form<ActForm>,
) -> Result<Response, ConsoleError> {
    form_action(&state, &c, f, |e, login, f| e.restore_trash(&f.name, login)).await?;
    Ok(Redirect::to("/console/admin/kb?msg=restored").into_response())
}

/// One click: an unanswered question becomes a similar question of entry `id`.
pub async fn kb_add_similar(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
    Form(f): Form<ActForm>,
) -> Result<Response, ConsoleError> {
    let id = f.id.clone();
    form_action(&state, &c, f, |editor, login, f| {
        let (e, version) = editor.entry(&f.id)?;
        let mut similar = e.similar.clone();
        similar.push(f.question.trim().to_owned());
        let input = EntryInput {
            question: e.question,
            similar,
            system: e.system,
            tags: e.tags,
            answer: e.answer,
            draft: e.draft,
            version,
        };
        editor.put_entry(&f.id, &input, login)
    })
    .await?;
    Ok(Redirect::to(&format!("/console/admin/kb/edit?id={id}&msg=saved")).into_response())
}

pub async fn rollback(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
    Form(f): Form<ActForm>,
) -> Result<Response, ConsoleError> {
    let file = f.file.clone();
    form_action(&state, &c, f, |e, login, f| {
        e.rollback(&f.file, f.seq, login)
    })
    .await?;
    let back = match file.strip_prefix("bot-scripts/") {
        Some(name) => format!("/console/admin/scripts/{name}?msg=rolled_back"),
        None => {
            let id = file.trim_start_matches("kb/").trim_end_matches(".md");
            format!("/console/admin/kb/edit?id={id}&msg=rolled_back")
        }
    };
    Ok(Redirect::to(&back).into_response())
}

#[derive(Template)]
#[template(path = "scripts_edit.html", config = "src/http/console/askama.toml")]
pub struct ScriptPage {
    pub user: UserView,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub files: Vec<String>,
    pub file: String,
    pub text: String,
    pub version: String,
    pub errors: Vec<LineError>,
    pub versions: Vec<(u64, String, String)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MsgQuery {
    pub msg: String,
}

pub async fn scripts_page(
    State(state): State<AppState>,
    AdminPage(_): AdminPage,
) -> Result<Response, ConsoleError> {
    let editor = state.editor.clone();
    let files = blocking(move || editor.script_files().map_err(edit_to_console)).await?;
    let first = files.first().map(|(f, _)| f.clone()).unwrap_or_default();
    Ok(Redirect::to(&format!("/console/admin/scripts/{first}")).into_response())
}

async fn script_page(state: &AppState, c: &Caller, file: &str) -> Result<ScriptPage, ConsoleError> {
    let (editor, name) = (state.editor.clone(), file.to_owned());
    let (files, (text, version)) = blocking(move || {
        let files = editor.script_files().map_err(edit_to_console)?;
        Ok((files, editor.script(&name).map_err(edit_to_console)?))
    })
    .await?;
    Ok(ScriptPage {
        user: user_view(c),
        csrf: c.csrf.clone().unwrap_or_default(),
        flash: None,
        files: files.into_iter().map(|(f, _)| f).collect(),
        file: file.to_owned(),
        text,
        version,
        errors: Vec::new(),
        versions: versions_view(state, &format!("bot-scripts/{file}"))?,
    })
}

pub async fn script_edit(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
    Path(file): Path<String>,
    Query(q): Query<MsgQuery>,
) -> Result<Html<String>, ConsoleError> {
    let mut page = script_page(&state, &c, &file).await?;
    page.flash = flash(&q.msg);
    render(page)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScriptForm {
    #[serde(rename = "_csrf")]
    pub csrf: String,
    pub text: String,
    pub version: String,
}

pub async fn script_save(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
    Path(file): Path<String>,
    Form(f): Form<ScriptForm>,
) -> Result<Response, ConsoleError> {
    c.check_csrf(Some(&f.csrf))?;
    // Browsers send CRLF line ends from a textarea.
    let text = f.text.replace("\r\n", "\n");
    let (editor, login, name) = (state.editor.clone(), c.login.clone(), file.clone());
    let (t, v) = (text.clone(), f.version.clone());
    let saved = blocking(move || Ok(editor.put_script(&name, &t, &v, &login))).await?;
    match saved {
        Ok(_) => {
            Ok(Redirect::to(&format!("/console/admin/scripts/{file}?msg=saved")).into_response())
        }
        Err(e) => {
            let (status, _) = status_of(&e);
            let mut page = script_page(&state, &c, &file).await?;
            page.text = text;
            page.version = f.version;
            page.flash = Some(Flash {
                kind: "error",
                text: format!("{}，未保存，线上流程不变", e),
            });
            if let EditError::Invalid(errors) = e {
                page.errors = errors;
            }
            Ok((status, render(page)?).into_response())
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html", config = "src/http/console/askama.toml")]
pub struct AuditPage {
    pub user: UserView,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub changes: Vec<(String, String, String, String, String)>,
}

pub async fn audit_page(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
) -> Result<Html<String>, ConsoleError> {
    let clock = super::pages::clock(&state);
    let changes = state
        .editor
        .audit(200)?
        .into_iter()
        .map(|ch| (clock.time(ch.at), ch.login, ch.action, ch.file, ch.diff))
        .collect();
    render(AuditPage {
        user: user_view(&c),
        csrf: c.csrf.clone().unwrap_or_default(),
        flash: None,
        changes,
    })
}
