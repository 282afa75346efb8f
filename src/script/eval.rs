//! Pure evaluation of an intake dialog: given a flow, the dialog state and one input, the new
//! state, the replies and what to do next. No I/O, no clock, no logging; the caller has
//! already downloaded and stored any images (they arrive as content hashes).
//!
//! (About 600 lines of code and 200 of tests: one state machine, kept in one file so its
//! steps read together.)

use serde::{Deserialize, Serialize};

use super::{Field, Flow, Global, Step, StepKind, Validator, matches_word, word_key};
use crate::ident::{self as validators, CustomerId, IdKind};

/// What the dialog has collected so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answers {
    pub customer_id: Option<CustomerId>,
    pub system: Option<String>,
    pub description: Option<String>,
    /// sha256 of each stored screenshot, in the order received.
    pub screenshots: Vec<String>,
    /// What the member asked before the intake when it is too short to stand as the
    /// description: kept, and put in front of the description they add.
    #[serde(default)]
    pub draft: Option<String>,
}

impl Answers {
    fn filled(&self, field: Field) -> bool {
        match field {
            Field::CustomerId => self.customer_id.is_some(),
            Field::System => self.system.is_some(),
            Field::Description => self.description.is_some(),
            // Screenshots are never "done" before the member says so.
            Field::Screenshots => false,
        }
    }

    fn clear(&mut self, field: Field) {
        match field {
            Field::CustomerId => self.customer_id = None,
            Field::System => self.system = None,
            Field::Description => self.description = None,
            Field::Screenshots => self.screenshots.clear(),
        }
    }
}

/// The state of one running dialog (stored in the conversation session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialog {
    pub flow: String,
    /// Index of the current step.
    pub step: usize,
    /// Failed answers at the current step.
    pub tries: u32,
    pub answers: Answers,
    /// Answering a step chosen from the edit menu: go back to the confirm step after it.
    #[serde(default)]
    pub editing: bool,
    /// At the confirm step, after "修改": waiting for which item to change.
    #[serde(default)]
    pub choosing_edit: bool,
    /// The flow's shape when the dialog started ([`crate::script::Flow::shape`]).
    #[serde(default)]
    pub shape: String,
}

/// One message from the member: text and/or images (already stored, as hashes).
#[derive(Debug, Clone, Default)]
pub struct Input<'a> {
    pub text: Option<&'a str>,
    pub images: Vec<String>,
}

/// Context that is not part of the dialog.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub customer_no: &'a regex::Regex,
    /// The dialog runs in a group chat (some prompts differ).
    pub group: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// The member confirmed: file the ticket from `dialog.answers`.
    Submit,
    /// The dialog ended without a ticket (retries exhausted).
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub replies: Vec<String>,
    pub action: Action,
}

fn options_list(options: &[String]) -> String {
    options
        .iter()
        .enumerate()
        .map(|(i, o)| format!("{}. {o}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The summary shown at the confirm step (identifier masked).
pub fn summary(answers: &Answers) -> String {
    let dash = || "（未填写）".to_owned();
    format!(
        "客户标识：{}\n所属系统：{}\n问题描述：{}\n截图：{} 张",
        answers
            .customer_id
            .as_ref()
            .map_or_else(dash, CustomerId::masked_label),
        answers.system.clone().unwrap_or_else(dash),
        answers
            .description
            .as_deref()
            .map_or_else(dash, |d| crate::ident::mask_truncate(d, 200)),
        answers.screenshots.len()
    )
}

/// The current step's prompt, placeholders filled.
pub fn prompt(flow: &Flow, dialog: &Dialog, ctx: Ctx<'_>) -> String {
    let Some(step) = flow.steps.get(dialog.step) else {
        return String::new();
    };
    let base = match (&step.prompt_group, ctx.group) {
        (Some(g), true) => g.clone(),
        _ => step.prompt.clone(),
    };
    let mut text = base.replace("{summary}", &summary(&dialog.answers));
    if step.field == Some(Field::Description)
        && let Some(draft) = &dialog.answers.draft
    {
        text = format!(
            "您刚才的问题“{}”已记下，请再补充一些细节（会接在它后面）。\n{text}",
            crate::ident::mask_truncate(draft, 40)
        );
    }
    match &step.kind {
        StepKind::Choice { options } => text = text.replace("{options}", &options_list(options)),
        StepKind::Images { min, max, .. } => {
            let count = dialog.answers.screenshots.len();
            text = text
                .replace("{min}", &min.to_string())
                .replace("{max}", &max.to_string())
                .replace("{count}", &count.to_string());
            if count > 0 {
                text.push_str(&format!(
                    "\n（已收到 {count} 张截图，可以继续发送，发完回复“完成”。）"
                ));
            }
        }
        _ => {}
    }
    text
}

/// The first step at or after `from` whose field is not yet filled.
fn next_open_step(flow: &Flow, answers: &Answers, from: usize) -> usize {
    (from..flow.steps.len())
        .find(|&i| flow.steps[i].field.is_none_or(|f| !answers.filled(f)))
        .unwrap_or(flow.steps.len().saturating_sub(1))
}

fn confirm_index(flow: &Flow) -> usize {
    flow.steps.len().saturating_sub(1)
}

/// Start `flow`, keeping whatever `prefill` already holds (a burst's description and images,
/// an FAQ question the member marked as unsolved). Prefilled text is only kept when the
/// step's validators accept it.
pub fn start(flow: &Flow, prefill: Answers, ctx: Ctx<'_>) -> (Dialog, Vec<String>) {
    let mut answers = Answers {
        screenshots: prefill.screenshots,
        ..Answers::default()
    };
    for step in &flow.steps {
        let (Some(field), StepKind::Text { validators }) = (step.field, &step.kind) else {
            continue;
        };
        let candidate = match field {
            Field::Description => prefill.description.clone(),
            Field::CustomerId => prefill.customer_id.as_ref().map(|c| c.value.clone()),
            _ => None,
        };
        if let Some(text) = candidate {
            match validate(validators, field, &text, ctx) {
                Ok(v) => store(&mut answers, field, v),
                Err(_) if field == Field::Description => answers.draft = Some(text),
                Err(_) => {}
            }
        }
    }
    // Two messages at most: the intro with what was kept, then the first question.
    let mut intro = flow.intro.clone();
    let mut kept = Vec::new();
    if let Some(d) = answers.description.as_ref().or(answers.draft.as_ref()) {
        kept.push(format!("问题描述“{}”", crate::ident::mask_truncate(d, 40)));
    }
    if !answers.screenshots.is_empty() {
        kept.push(format!("截图 {} 张", answers.screenshots.len()));
    }
    if !kept.is_empty() {
        if !intro.is_empty() {
            intro.push('\n');
        }
        intro.push_str(&format!("已记下您刚才发的{}。", kept.join("和")));
    }
    let mut replies = Vec::new();
    if !intro.is_empty() {
        replies.push(intro);
    }
    let dialog = Dialog {
        flow: flow.id.clone(),
        step: next_open_step(flow, &answers, 0),
        tries: 0,
        answers,
        editing: false,
        choosing_edit: false,
        shape: flow.shape.clone(),
    };
    replies.push(prompt(flow, &dialog, ctx));
    (dialog, replies)
}

enum Value {
    Id(CustomerId),
    Text(String),
}

fn store(answers: &mut Answers, field: Field, v: Value) {
    match (field, v) {
        (Field::CustomerId, Value::Id(id)) => answers.customer_id = Some(id),
        (Field::Description, Value::Text(t)) => answers.description = Some(t),
        (Field::System, Value::Text(t)) => answers.system = Some(t),
        _ => {}
    }
}

fn validate(
    validators: &[Validator],
    field: Field,
    text: &str,
    ctx: Ctx<'_>,
) -> Result<Value, String> {
    let text = text.trim();
    if field == Field::CustomerId {
        let kinds: Vec<IdKind> = validators.iter().filter_map(Validator::id_kind).collect();
        if kinds.is_empty() || validators.contains(&Validator::CustomerId) {
            return validators::customer_id(text, ctx.customer_no).map(Value::Id);
        }
        let s = validators::normalize(text);
        let mut first_err = None;
        for kind in kinds {
            match validators::id_of_kind(kind, &s, ctx.customer_no) {
                Ok(id) => return Ok(Value::Id(id)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        return Err(first_err.unwrap_or_default());
    }
    for v in validators {
        match v {
            Validator::MinChars(n) => {
                validators::min_chars(text, *n)?;
            }
            Validator::MaxChars(n) if text.chars().count() > *n => {
                return Err(format!("内容太长（最多{n}个字），请精简后重新发送。"));
            }
            _ => {}
        }
    }
    if text.is_empty() {
        return Err("内容不能为空。".into());
    }
    Ok(Value::Text(text.to_owned()))
}

fn choose<'o>(options: &'o [String], input: &str) -> Option<&'o String> {
    let n = validators::normalize(input);
    if let Ok(i) = n.parse::<usize>() {
        return options.get(i.checked_sub(1)?);
    }
    let key = word_key(input);
    if key.is_empty() {
        return None;
    }
    if let Some(o) = options.iter().find(|o| word_key(o) == key) {
        return Some(o);
    }
    let partial: Vec<&String> = options
        .iter()
        .filter(|o| word_key(o).contains(&key))
        .collect();
    (partial.len() == 1).then(|| partial[0])
}

/// A failed answer: count it, and cancel once the step's retries are spent.
fn fail(step: &Step, dialog: &mut Dialog, message: String, global: &Global) -> Outcome {
    dialog.tries += 1;
    if dialog.tries > step.retries {
        return Outcome {
            replies: vec![global.exhausted.clone()],
            action: Action::Cancel,
        };
    }
    let left = step.retries + 1 - dialog.tries;
    Outcome {
        replies: vec![format!("{message}（还可以再试 {left} 次）")],
        action: Action::Continue,
    }
}

/// Move past the current (answered) step and prompt the next one.
fn proceed(flow: &Flow, dialog: &mut Dialog, ctx: Ctx<'_>, mut replies: Vec<String>) -> Outcome {
    dialog.tries = 0;
    dialog.step = if dialog.editing {
        dialog.editing = false;
        confirm_index(flow)
    } else {
        next_open_step(flow, &dialog.answers, dialog.step + 1)
    };
    replies.push(prompt(flow, dialog, ctx));
    Outcome {
        replies,
        action: Action::Continue,
    }
}

/// Feed one input to the dialog.
pub fn advance(
    flow: &Flow,
    dialog: &mut Dialog,
    input: &Input<'_>,
    ctx: Ctx<'_>,
    global: &Global,
) -> Outcome {
    let Some(step) = flow.steps.get(dialog.step) else {
        return Outcome {
            replies: vec!["流程已更新，请发送“提单”重新开始。".into()],
            action: Action::Cancel,
        };
    };
    let text = input.text.map(str::trim).filter(|t| !t.is_empty());
    let mut feed = Feed {
        flow,
        step,
        dialog,
        ctx,
        global,
        replies: Vec::new(),
    };
    // Images are kept whatever the step: an agent often sends them before being asked.
    if !input.images.is_empty()
        && let Some(done) = feed.take_images(&input.images, text)
    {
        return done;
    }
    let Some(text) = text else {
        return feed.ask_again();
    };
    match &step.kind {
        StepKind::Text { validators } => feed.text(validators, text),
        StepKind::Choice { options } => feed.choice(options, text),
        StepKind::Images {
            min, done_words, ..
        } => feed.images_done(*min, done_words, text),
        StepKind::Confirm { .. } if feed.dialog.choosing_edit => feed.choose_edit(text),
        StepKind::Confirm {
            submit_words,
            edit_words,
        } => feed.confirm(submit_words, edit_words, text),
    }
}

/// One input being fed to a dialog at `step`: one method per kind of step.
struct Feed<'a, 'd> {
    flow: &'a Flow,
    step: &'a Step,
    dialog: &'d mut Dialog,
    ctx: Ctx<'a>,
    global: &'a Global,
    /// Said before the step's own answer (about screenshots received).
    replies: Vec<String>,
}

impl Feed<'_, '_> {
    fn proceed(self) -> Outcome {
        proceed(self.flow, self.dialog, self.ctx, self.replies)
    }

    /// A failed answer (what was said about screenshots is dropped with it).
    fn fail(self, message: String) -> Outcome {
        fail(self.step, self.dialog, message, self.global)
    }

    /// Nothing to answer with: the open question again.
    fn ask_again(self) -> Outcome {
        Outcome {
            replies: vec![prompt(self.flow, self.dialog, self.ctx)],
            action: Action::Continue,
        }
    }

    /// Keep `images` (up to the flow's maximum). Returns the outcome when the images are the
    /// whole answer: at an images step, or without text.
    fn take_images(&mut self, images: &[String], text: Option<&str>) -> Option<Outcome> {
        let max = self
            .flow
            .steps
            .iter()
            .find_map(|s| match s.kind {
                StepKind::Images { max, .. } => Some(max),
                _ => None,
            })
            .unwrap_or(9);
        let shots = &mut self.dialog.answers.screenshots;
        let room = max.saturating_sub(shots.len());
        let mut added = 0;
        for h in images {
            if shots.contains(h) {
                continue;
            }
            if added < room {
                shots.push(h.clone());
                added += 1;
            }
        }
        let dropped = images.len().saturating_sub(added);
        let count = shots.len();
        if dropped > 0 && count >= max {
            self.replies.push(format!(
                "最多可提交 {max} 张截图，多出的 {dropped} 张没有保存。"
            ));
        }
        if let StepKind::Images { done_words, .. } = &self.step.kind {
            if text.is_some_and(|t| matches_word(t, done_words)) {
                let replies = std::mem::take(&mut self.replies);
                return Some(proceed(self.flow, self.dialog, self.ctx, replies));
            }
            if added > 0 {
                self.replies.push(format!(
                    "已收到第 {count} 张截图。还有就继续发送，发完回复“完成”。"
                ));
            }
            return Some(Outcome {
                replies: std::mem::take(&mut self.replies),
                action: Action::Continue,
            });
        }
        if added > 0 {
            self.replies
                .push(format!("已收到截图（共 {count} 张），会随工单一起提交。"));
        }
        // The open question was already asked; repeating it after every picture of a burst
        // is noise.
        text.is_none().then(|| Outcome {
            replies: std::mem::take(&mut self.replies),
            action: Action::Continue,
        })
    }

    fn text(mut self, validators: &[Validator], text: &str) -> Outcome {
        let field = self.step.field.unwrap_or(Field::Description);
        let combined = match (&self.dialog.answers.draft, field) {
            (Some(draft), Field::Description) => format!("{draft}；{text}"),
            _ => text.to_owned(),
        };
        match validate(validators, field, &combined, self.ctx) {
            Ok(v) => {
                if field == Field::Description {
                    self.dialog.answers.draft = None;
                }
                store(&mut self.dialog.answers, field, v);
                self.proceed()
            }
            Err(e) => {
                // Unlike other steps, what was said about screenshots is kept.
                let msg = self.step.error.clone().unwrap_or(e);
                let mut replies = std::mem::take(&mut self.replies);
                let mut o = fail(self.step, self.dialog, msg, self.global);
                replies.append(&mut o.replies);
                o.replies = replies;
                o
            }
        }
    }

    fn choice(self, options: &[String], text: &str) -> Outcome {
        match choose(options, text) {
            Some(o) => {
                self.dialog.answers.system = Some(o.clone());
                self.proceed()
            }
            None => {
                let msg = self.step.error.clone().unwrap_or_else(|| {
                    format!("没有对应的选项，请回复序号：\n{}", options_list(options))
                });
                self.fail(msg)
            }
        }
    }

    /// Text at an images step: only a done word moves on, once there are enough.
    fn images_done(self, min: usize, done_words: &[String], text: &str) -> Outcome {
        let enough = self.dialog.answers.screenshots.len() >= min;
        // "提交" after the screenshots means "done" too: the summary comes next.
        let submit = self.flow.steps.iter().any(|s| match &s.kind {
            StepKind::Confirm { submit_words, .. } => matches_word(text, submit_words),
            _ => false,
        });
        if enough && submit {
            return self.proceed();
        }
        if enough && !matches_word(text, done_words) {
            // Not an error: the screenshots are there, the member only has to say so.
            let count = self.dialog.answers.screenshots.len();
            return Outcome {
                replies: vec![format!(
                    "已收到 {count} 张截图。还有就继续发送，发完回复“完成”。"
                )],
                action: Action::Continue,
            };
        }
        if matches_word(text, done_words) {
            if self.dialog.answers.screenshots.len() >= min {
                return self.proceed();
            }
            let msg =
                self.step.error.clone().unwrap_or_else(|| {
                    format!("还需要至少 {min} 张截图，请先发送截图再回复“完成”。")
                });
            return self.fail(msg);
        }
        let msg = format!(
            "这一步需要发送截图（图片）。{}",
            if self.ctx.group {
                "在群里请@我并把图片和文字一起发送。"
            } else {
                "发完后回复“完成”。"
            }
        );
        self.fail(msg)
    }

    /// At the confirm step, after "修改": which item to change.
    fn choose_edit(self, text: &str) -> Outcome {
        let editable: Vec<(usize, &Step)> = self
            .flow
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.field.is_some())
            .collect();
        let labels: Vec<String> = editable
            .iter()
            .map(|(_, s)| s.field.map(Field::label).unwrap_or_default().to_owned())
            .collect();
        let Some(label) = choose(&labels, text) else {
            return self.fail(format!(
                "请回复要修改项目的序号：\n{}",
                options_list(&labels)
            ));
        };
        let (idx, target) = editable[labels.iter().position(|l| l == label).unwrap_or(0)];
        if let Some(f) = target.field {
            self.dialog.answers.clear(f);
        }
        self.dialog.step = idx;
        self.dialog.tries = 0;
        self.dialog.editing = true;
        self.dialog.choosing_edit = false;
        self.ask_again()
    }

    fn confirm(self, submit_words: &[String], edit_words: &[String], text: &str) -> Outcome {
        if matches_word(text, submit_words) {
            return self.submit();
        }
        if matches_word(text, edit_words) {
            self.dialog.choosing_edit = true;
            self.dialog.tries = 0;
            let labels: Vec<String> = self
                .flow
                .steps
                .iter()
                .filter_map(|s| s.field.map(|f| f.label().to_owned()))
                .collect();
            return Outcome {
                replies: vec![format!(
                    "要修改哪一项？请回复序号：\n{}",
                    options_list(&labels)
                )],
                action: Action::Continue,
            };
        }
        let msg = self
            .step
            .error
            .clone()
            .unwrap_or_else(|| "请回复“提交”或“修改”。".into());
        self.fail(msg)
    }

    /// "提交": file the ticket, unless something is missing.
    fn submit(self) -> Outcome {
        let answers = &self.dialog.answers;
        let missing: Vec<&str> = self
            .flow
            .steps
            .iter()
            .filter_map(|s| match (s.field, &s.kind) {
                (Some(Field::Screenshots), StepKind::Images { min, .. }) => {
                    (answers.screenshots.len() < *min).then_some("截图")
                }
                (Some(f), _) if !answers.filled(f) => Some(f.label()),
                _ => None,
            })
            .collect();
        let Some(first) = missing.first() else {
            return Outcome {
                replies: self.replies,
                action: Action::Submit,
            };
        };
        // Cannot happen through the normal order, but a flow edit could cause it.
        let idx = self
            .flow
            .steps
            .iter()
            .position(|s| s.field.map(Field::label) == Some(first))
            .unwrap_or(0);
        let said = format!("还缺少{}。", missing.join("、"));
        self.dialog.step = idx;
        self.dialog.tries = 0;
        Outcome {
            replies: vec![said, prompt(self.flow, self.dialog, self.ctx)],
            action: Action::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{ScriptSet, load_dir};

    fn set() -> ScriptSet {
        load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bot-scripts"))
            .expect("shipped scripts")
    }

    fn ctx(group: bool) -> Ctx<'static> {
        static CUSTOMER_NO: std::sync::LazyLock<regex::Regex> =
            std::sync::LazyLock::new(|| regex::Regex::new(r"^[0-9]{8,12}$").expect("regex"));
        Ctx {
            customer_no: &CUSTOMER_NO,
            group,
        }
    }

    fn text(t: &str) -> Input<'_> {
        Input {
            text: Some(t),
            images: Vec::new(),
        }
    }

    fn images(n: usize, offset: usize) -> Input<'static> {
        Input {
            text: None,
            images: (0..n).map(|i| format!("{:064x}", i + offset)).collect(),
        }
    }

    #[test]
    fn submit_after_a_burst_of_screenshots_means_done() {
        let s = set();
        let flow = s.flow("report").expect("flow");
        let ctx = ctx(false);
        let prefill = Answers {
            customer_id: Some(validators::customer_id("13812345678", ctx.customer_no).expect("id")),
            description: Some("今天上午10点买入股票提示资金不足".into()),
            ..Answers::default()
        };
        let (mut d, _) = start(flow, prefill, ctx);
        advance(flow, &mut d, &text("2"), ctx, &s.global);
        assert_eq!(flow.steps[d.step].id, "screenshots");
        advance(flow, &mut d, &images(3, 0), ctx, &s.global);
        let o = advance(flow, &mut d, &text("好的"), ctx, &s.global);
        assert_eq!(d.tries, 0, "not a failed answer: {o:?}");
        assert!(o.replies[0].contains("已收到 3 张截图"), "{o:?}");
        let o = advance(flow, &mut d, &text("提交"), ctx, &s.global);
        assert!(
            o.replies.last().expect("summary").contains("请核对"),
            "{o:?}"
        );
        assert_eq!(flow.steps[d.step].id, "confirm");
    }

    #[test]
    fn happy_path_in_order() {
        let s = set();
        let flow = s.flow("report").expect("flow");
        let ctx = ctx(false);
        let (mut d, replies) = start(flow, Answers::default(), ctx);
        assert!(replies.last().expect("prompt").contains("客户标识"));
        let o = advance(flow, &mut d, &text("11010519491231002X"), ctx, &s.global);
        assert!(
            o.replies.last().expect("prompt").contains("1. 开户/账户"),
            "{o:?}"
        );
        let o = advance(flow, &mut d, &text("2"), ctx, &s.global);
        assert!(o.replies.last().expect("prompt").contains("描述"), "{o:?}");
        assert_eq!(d.answers.system.as_deref(), Some("交易"));
        advance(
            flow,
            &mut d,
            &text("今天上午10点买入股票提示资金不足"),
            ctx,
            &s.global,
        );
        assert_eq!(flow.steps[d.step].id, "screenshots");
        let o = advance(flow, &mut d, &images(2, 0), ctx, &s.global);
        assert!(o.replies[0].contains("第 2 张"), "{o:?}");
        let o = advance(flow, &mut d, &text("完成"), ctx, &s.global);
        let summary = o.replies.last().expect("summary");
        assert!(
            summary.contains("110105＊＊＊＊＊＊＊＊002X"),
            "masked: {summary}"
        );
        assert!(!summary.contains("11010519491231002X"));
        let o = advance(flow, &mut d, &text("提交"), ctx, &s.global);
        assert_eq!(o.action, Action::Submit);
        assert_eq!(d.answers.screenshots.len(), 2);
    }

    #[test]
    fn invalid_answers_are_retried_then_cancelled() {
        let s = set();
        let flow = s.flow("report").expect("flow");
        let ctx = ctx(false);
        let (mut d, _) = start(flow, Answers::default(), ctx);
        let o = advance(flow, &mut d, &text("110105194912310021"), ctx, &s.global);
        assert_eq!(o.action, Action::Continue);
        assert!(
            o.replies[0].contains("校验") && o.replies[0].contains("还可以再试 3 次"),
            "{o:?}"
        );
        assert_eq!(d.step, 0);
        for _ in 0..2 {
            advance(flow, &mut d, &text("abc"), ctx, &s.global);
        }
        let o = advance(flow, &mut d, &text("abc"), ctx, &s.global);
        assert_eq!(o.action, Action::Cancel);
        assert_eq!(o.replies, vec![s.global.exhausted.clone()]);
    }

    #[test]
    fn screenshot_step_needs_an_image() {
        let s = set();
        let flow = s.flow("report").expect("flow");
        let ctx = ctx(true);
        let prefill = Answers {
            customer_id: Some(validators::customer_id("13812345678", ctx.customer_no).expect("id")),
            description: Some("开户后第二天还是无法登录交易".into()),
            ..Answers::default()
        };
        let (mut d, replies) = start(flow, prefill, ctx);
        assert_eq!(
            flow.steps[d.step].id, "system",
            "prefilled steps are skipped"
        );
        assert!(replies.iter().any(|r| r.contains("已记下")), "{replies:?}");
        advance(flow, &mut d, &text("App"), ctx, &s.global);
        assert_eq!(d.answers.system.as_deref(), Some("App/登录"));
        assert_eq!(flow.steps[d.step].id, "screenshots");
        assert!(prompt(flow, &d, ctx).contains("@我"), "group prompt");
        let o = advance(flow, &mut d, &text("完成"), ctx, &s.global);
        assert!(o.replies[0].contains("截图"), "{o:?}");
        assert_eq!(flow.steps[d.step].id, "screenshots");
        let o = advance(flow, &mut d, &text("这是截图"), ctx, &s.global);
        assert!(o.replies[0].contains("需要发送截图"));
        // A mixed message: images plus the done word.
        let o = advance(
            flow,
            &mut d,
            &Input {
                text: Some("完成"),
                images: vec!["a".repeat(64)],
            },
            ctx,
            &s.global,
        );
        assert_eq!(flow.steps[d.step].id, "confirm", "{o:?}");
    }

    #[test]
    fn at_most_nine_screenshots() {
        let s = set();
        let flow = s.flow("report").expect("flow");
        let ctx = ctx(false);
        let (mut d, _) = start(flow, Answers::default(), ctx);
        let o = advance(flow, &mut d, &images(20, 0), ctx, &s.global);
        assert_eq!(d.answers.screenshots.len(), 9);
        assert!(
            o.replies.iter().any(|r| r.contains("多出的 11 张")),
            "{o:?}"
        );
        assert_eq!(d.step, 0, "still asking for the identifier");
        // The same image twice is kept once.
        let (mut d, _) = start(flow, Answers::default(), ctx);
        advance(flow, &mut d, &images(1, 0), ctx, &s.global);
        advance(flow, &mut d, &images(1, 0), ctx, &s.global);
        assert_eq!(d.answers.screenshots.len(), 1);
    }

    #[test]
    fn edit_from_the_summary_returns_to_it() {
        let s = set();
        let flow = s.flow("report").expect("flow");
        let ctx = ctx(false);
        let (mut d, _) = start(flow, Answers::default(), ctx);
        for t in ["13812345678", "交易", "早上开盘后委托一直显示未报"] {
            advance(flow, &mut d, &text(t), ctx, &s.global);
        }
        advance(flow, &mut d, &images(1, 0), ctx, &s.global);
        advance(flow, &mut d, &text("完成"), ctx, &s.global);
        let o = advance(flow, &mut d, &text("修改"), ctx, &s.global);
        assert!(o.replies[0].contains("2. 所属系统"), "{o:?}");
        advance(flow, &mut d, &text("2"), ctx, &s.global);
        assert_eq!(flow.steps[d.step].id, "system");
        let o = advance(flow, &mut d, &text("融资融券"), ctx, &s.global);
        assert_eq!(flow.steps[d.step].id, "confirm", "back to the summary");
        assert!(o.replies.last().expect("summary").contains("融资融券"));
        assert_eq!(
            d.answers.description.as_deref(),
            Some("早上开盘后委托一直显示未报"),
            "others kept"
        );
        assert_eq!(
            advance(flow, &mut d, &text("提交"), ctx, &s.global).action,
            Action::Submit
        );
    }

    #[test]
    fn a_short_burst_text_is_not_kept_as_description() {
        let s = set();
        let flow = s.flow("report").expect("flow");
        let ctx = ctx(false);
        let (d, _) = start(
            flow,
            Answers {
                description: Some("交易不了".into()),
                ..Answers::default()
            },
            ctx,
        );
        assert_eq!(
            d.answers.description, None,
            "fails min_chars:8, asked for later"
        );
    }
}
