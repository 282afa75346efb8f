//! Parsing one file of `bot-scripts/`: TOML into raw structs (with spans, so every error
//! names its line), then the checks that make a flow runnable.

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use super::{Error, Field, Flow, Global, KNOWN_VALIDATORS, Step, StepKind, Validator};
use crate::util::line_of;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    global: Option<Global>,
    flow: Option<RawFlow>,
    #[serde(default)]
    steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    id: Spanned<String>,
    name: String,
    triggers: Spanned<Vec<String>>,
    #[serde(default)]
    intro: String,
    submit: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    kind: Spanned<String>,
    field: Option<Spanned<String>>,
    prompt: Spanned<String>,
    prompt_group: Option<String>,
    #[serde(default)]
    validators: Vec<Spanned<String>>,
    #[serde(default)]
    options: Vec<String>,
    min: Option<usize>,
    max: Option<usize>,
    #[serde(default)]
    done_words: Vec<String>,
    #[serde(default)]
    submit_words: Vec<String>,
    #[serde(default)]
    edit_words: Vec<String>,
    retries: Option<u32>,
    error: Option<String>,
}

struct FileCtx<'a> {
    path: String,
    text: &'a str,
    errors: Vec<Error>,
}

impl FileCtx<'_> {
    fn err_at(&mut self, offset: usize, message: impl Into<String>) {
        self.errors.push(Error {
            path: self.path.clone(),
            line: line_of(self.text, offset),
            message: message.into(),
        });
    }
}

/// Parse one file's text (named `path` in errors).
pub(super) fn parse_file(
    path: &str,
    text: &str,
) -> Result<(Option<Global>, Option<Flow>), Vec<Error>> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        vec![Error {
            path: path.to_owned(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().to_owned(),
        }]
    })?;
    let mut cx = FileCtx {
        path: path.to_owned(),
        text,
        errors: Vec::new(),
    };
    let flow = match raw.flow {
        None => {
            if !raw.steps.is_empty() {
                cx.err_at(0, "[[steps]] without a [flow] table");
            }
            if raw.global.is_none() {
                cx.err_at(0, "file has neither [global] nor [flow]");
            }
            None
        }
        Some(f) => Some(build_flow(&mut cx, f, raw.steps)),
    };
    if cx.errors.is_empty() {
        Ok((raw.global, flow))
    } else {
        Err(cx.errors)
    }
}

fn build_flow(cx: &mut FileCtx<'_>, f: RawFlow, raw_steps: Vec<RawStep>) -> Flow {
    if f.id.get_ref().trim().is_empty() {
        cx.err_at(f.id.span().start, "flow id must not be empty");
    }
    if f.triggers.get_ref().is_empty() {
        cx.err_at(
            f.triggers.span().start,
            "a flow needs at least one trigger word",
        );
    }
    if f.submit.get_ref() != "ticket" {
        cx.err_at(
            f.submit.span().start,
            format!("unknown submit `{}` (known: ticket)", f.submit.get_ref()),
        );
    }
    let mut steps = Vec::new();
    let mut ids = HashSet::new();
    let mut fields = HashSet::new();
    for s in raw_steps {
        steps.push(build_step(cx, s, &mut ids, &mut fields));
    }
    match steps.last() {
        Some(Step {
            kind: StepKind::Confirm { .. },
            ..
        }) => {}
        _ => cx.err_at(
            f.id.span().start,
            "a ticket flow must end with a confirm step",
        ),
    }
    if steps
        .iter()
        .filter(|s| matches!(s.kind, StepKind::Confirm { .. }))
        .count()
        > 1
    {
        cx.err_at(
            f.id.span().start,
            "a flow has exactly one confirm step, the last",
        );
    }
    for needed in Field::ALL {
        if !fields.contains(&needed) {
            cx.err_at(
                f.id.span().start,
                format!("a ticket flow must fill `{}`", needed.key()),
            );
        }
    }
    Flow {
        id: f.id.into_inner(),
        name: f.name,
        triggers: f.triggers.into_inner(),
        intro: f.intro,
        shape: super::shape_of(&steps),
        steps,
        path: cx.path.clone(),
    }
}

/// One step of a flow: its own checks (ids and fields are shared across the flow).
fn build_step(
    cx: &mut FileCtx<'_>,
    s: RawStep,
    ids: &mut HashSet<String>,
    fields: &mut HashSet<Field>,
) -> Step {
    let at = s.id.span().start;
    if !ids.insert(s.id.get_ref().clone()) {
        cx.err_at(at, format!("duplicate step id `{}`", s.id.get_ref()));
    }
    if s.prompt.get_ref().trim().is_empty() {
        cx.err_at(s.prompt.span().start, "prompt must not be empty");
    }
    let field = s.field.as_ref().and_then(|name| {
        let Some(f) = Field::parse(name.get_ref()) else {
            let known = "customer_id, system, description, screenshots";
            let message = format!("unknown field `{}` (known: {known})", name.get_ref());
            cx.err_at(name.span().start, message);
            return None;
        };
        if !fields.insert(f) {
            let message = format!("field `{}` is filled by two steps", name.get_ref());
            cx.err_at(name.span().start, message);
        }
        Some(f)
    });
    let kind = step_kind(cx, &s);
    let is_confirm = matches!(kind, StepKind::Confirm { .. });
    if !is_confirm && field.is_none() && s.field.is_none() {
        cx.err_at(at, "step needs a `field` to fill");
    }
    let is_images = matches!(kind, StepKind::Images { .. });
    if is_images != (field == Some(Field::Screenshots)) && field.is_some() {
        cx.err_at(
            at,
            "the screenshots field is filled by an images step, and only by one",
        );
    }
    if !s.validators.is_empty() && !matches!(kind, StepKind::Text { .. }) {
        cx.err_at(at, "validators apply to text steps only");
    }
    Step {
        id: s.id.into_inner(),
        kind,
        field,
        prompt: s.prompt.into_inner(),
        prompt_group: s.prompt_group,
        retries: s.retries.unwrap_or(3),
        error: s.error,
    }
}

/// The kind of step `s` with its settings; an unknown kind is reported (the flow is then
/// rejected, so the placeholder returned never runs).
fn step_kind(cx: &mut FileCtx<'_>, s: &RawStep) -> StepKind {
    let at = s.id.span().start;
    match s.kind.get_ref().as_str() {
        "text" => {
            let mut validators = Vec::new();
            for v in &s.validators {
                match Validator::parse(v.get_ref()) {
                    Some(val) => validators.push(val),
                    None => cx.err_at(
                        v.span().start,
                        format!(
                            "unknown validator `{}` (known: {KNOWN_VALIDATORS})",
                            v.get_ref()
                        ),
                    ),
                }
            }
            StepKind::Text { validators }
        }
        "choice" => {
            if s.options.len() < 2 {
                cx.err_at(at, "a choice step needs at least two options");
            }
            StepKind::Choice {
                options: s.options.clone(),
            }
        }
        "images" => {
            let (min, max) = (s.min.unwrap_or(1), s.max.unwrap_or(9));
            if max == 0 || min > max || max > 20 {
                cx.err_at(
                    at,
                    format!("images step needs 0 <= min <= max <= 20, got min {min}, max {max}"),
                );
            }
            if s.done_words.is_empty() {
                cx.err_at(at, "an images step needs done_words (e.g. 完成)");
            }
            StepKind::Images {
                min,
                max,
                done_words: s.done_words.clone(),
            }
        }
        "confirm" => {
            if s.submit_words.is_empty() {
                cx.err_at(at, "a confirm step needs submit_words");
            }
            StepKind::Confirm {
                submit_words: s.submit_words.clone(),
                edit_words: s.edit_words.clone(),
            }
        }
        other => {
            cx.err_at(
                s.kind.span().start,
                format!("unknown kind `{other}` (known: text, choice, images, confirm)"),
            );
            StepKind::Text {
                validators: Vec::new(),
            }
        }
    }
}
