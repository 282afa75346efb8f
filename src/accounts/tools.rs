//! The handlers' own tools: reply templates (personal or shared) with variables, macros
//! (several actions in one click), saved queue views, and per-account preferences (the
//! WeCom userid to notify, whether to be notified, the default view).
//!
//! Trees: `templates`, `macros`, `views` (`u64 id` → record), `prefs` (`String login` →
//! [`Prefs`]).

use serde::{Deserialize, Serialize};

use crate::store::trees;
use crate::store::{self, Record, Store, Tree};

/// The variables a template may use.
pub const VARIABLES: [&str; 4] = ["{报告人}", "{工单号}", "{系统}", "{处理人}"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub id: u64,
    pub name: String,
    pub body: String,
    /// `None`: shared (admins manage them); else the owner's login.
    pub owner: Option<String>,
    pub updated_at: i64,
}

impl Record for Template {}

/// What a macro does, in order: reply with a template, set a status (with a reason),
/// assign to whoever applies it, set a priority.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MacroSteps {
    pub template: Option<u64>,
    pub status: Option<String>,
    pub reason: String,
    pub assign_me: bool,
    pub priority: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Macro {
    pub id: u64,
    pub name: String,
    pub owner: Option<String>,
    pub steps: MacroSteps,
}

impl Record for Macro {}

/// A named queue filter (the query string of `/console/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub id: u64,
    pub name: String,
    pub query: String,
    pub owner: Option<String>,
}

impl Record for View {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Prefs {
    /// The account's WeCom userid (handlers are WeCom members too); empty: none.
    pub wecom_userid: String,
    /// WeCom notices about their tickets (follow-ups, ratings, SLA warnings, @mentions).
    pub notify: bool,
    /// The saved view the queue opens with.
    pub default_view: Option<u64>,
    /// When they last opened each ticket (`updated since you last looked`), by ticket id.
    pub seen: Vec<(u64, i64)>,
}

impl Record for Prefs {}

/// Why a tool change was refused (shown to the handler).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolError {
    #[error("名称和内容都不能为空")]
    Empty,
    #[error("模板里有未知的变量 {0}（可用：{{报告人}} {{工单号}} {{系统}} {{处理人}}）")]
    UnknownVariable(String),
    #[error("共享的模板、宏和视图只有管理员可以修改")]
    SharedIsAdmins,
    #[error("找不到该项")]
    NotFound,
    #[error("存储错误，请稍后重试")]
    Storage(#[source] std::sync::Arc<store::Error>),
}

impl From<store::Error> for ToolError {
    fn from(e: store::Error) -> Self {
        ToolError::Storage(std::sync::Arc::new(e))
    }
}

/// The first `{…}` in `body` that is not a known variable.
pub fn unknown_variable(body: &str) -> Option<String> {
    let mut rest = body;
    while let Some(start) = rest.find('{') {
        let after = &rest[start..];
        let end = after.find('}')?;
        let var = &after[..=end];
        if !VARIABLES.contains(&var) {
            return Some(var.to_owned());
        }
        rest = &after[end + 1..];
    }
    None
}

/// Fill a template's variables.
pub fn fill(body: &str, reporter: &str, number: &str, system: &str, handler: &str) -> String {
    body.replace("{报告人}", reporter)
        .replace("{工单号}", number)
        .replace("{系统}", system)
        .replace("{处理人}", handler)
}

#[derive(Clone)]
pub struct Tools {
    store: Store,
    templates: Tree<u64, Template>,
    macros: Tree<u64, Macro>,
    views: Tree<u64, View>,
    prefs: Tree<String, Prefs>,
}

/// Who may change an item owned by `owner`: its owner, or an admin for shared ones.
fn may_change(owner: &Option<String>, login: &str, admin: bool) -> Result<(), ToolError> {
    match owner {
        None if admin => Ok(()),
        None => Err(ToolError::SharedIsAdmins),
        Some(o) if o == login => Ok(()),
        Some(_) => Err(ToolError::NotFound),
    }
}

impl Tools {
    pub fn open(store: &Store) -> store::Result<Tools> {
        Ok(Tools {
            store: store.clone(),
            templates: store.tree(&trees::TEMPLATES)?,
            macros: store.tree(&trees::MACROS)?,
            views: store.tree(&trees::VIEWS)?,
            prefs: store.tree(&trees::PREFS)?,
        })
    }

    fn visible<T: Record>(
        tree: &Tree<u64, T>,
        login: &str,
        owner: impl Fn(&T) -> &Option<String>,
    ) -> store::Result<Vec<T>> {
        let mut out = Vec::new();
        for item in tree.iter() {
            let (_, t) = item?;
            if owner(&t).as_deref().is_none_or(|o| o == login) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Shared templates and `login`'s own.
    pub fn templates(&self, login: &str) -> store::Result<Vec<Template>> {
        Self::visible(&self.templates, login, |t| &t.owner)
    }

    pub fn template(&self, id: u64) -> store::Result<Option<Template>> {
        self.templates.get(&id)
    }

    /// Add a template (`shared`: admins only).
    pub fn add_template(
        &self,
        login: &str,
        admin: bool,
        shared: bool,
        name: &str,
        body: &str,
    ) -> Result<Template, ToolError> {
        if name.trim().is_empty() || body.trim().is_empty() {
            return Err(ToolError::Empty);
        }
        if let Some(v) = unknown_variable(body) {
            return Err(ToolError::UnknownVariable(v));
        }
        let owner = (!shared).then(|| login.to_owned());
        may_change(&owner, login, admin)?;
        let t = Template {
            id: self.store.generate_id()?,
            name: name.trim().to_owned(),
            body: body.trim().to_owned(),
            owner,
            updated_at: crate::util::unix_millis(),
        };
        self.templates.insert(&t.id, &t)?;
        Ok(t)
    }

    pub fn delete_template(&self, login: &str, admin: bool, id: u64) -> Result<(), ToolError> {
        let t = self.templates.get(&id)?.ok_or(ToolError::NotFound)?;
        may_change(&t.owner, login, admin)?;
        self.templates.remove(&id)?;
        Ok(())
    }

    pub fn macros(&self, login: &str) -> store::Result<Vec<Macro>> {
        Self::visible(&self.macros, login, |m| &m.owner)
    }

    pub fn get_macro(&self, id: u64) -> store::Result<Option<Macro>> {
        self.macros.get(&id)
    }

    pub fn add_macro(
        &self,
        login: &str,
        admin: bool,
        shared: bool,
        name: &str,
        steps: MacroSteps,
    ) -> Result<Macro, ToolError> {
        if name.trim().is_empty() {
            return Err(ToolError::Empty);
        }
        if let Some(t) = steps.template
            && self.templates.get(&t)?.is_none()
        {
            return Err(ToolError::NotFound);
        }
        let owner = (!shared).then(|| login.to_owned());
        may_change(&owner, login, admin)?;
        let m = Macro {
            id: self.store.generate_id()?,
            name: name.trim().to_owned(),
            owner,
            steps,
        };
        self.macros.insert(&m.id, &m)?;
        Ok(m)
    }

    pub fn delete_macro(&self, login: &str, admin: bool, id: u64) -> Result<(), ToolError> {
        let m = self.macros.get(&id)?.ok_or(ToolError::NotFound)?;
        may_change(&m.owner, login, admin)?;
        self.macros.remove(&id)?;
        Ok(())
    }

    pub fn views(&self, login: &str) -> store::Result<Vec<View>> {
        Self::visible(&self.views, login, |v| &v.owner)
    }

    pub fn add_view(
        &self,
        login: &str,
        admin: bool,
        shared: bool,
        name: &str,
        query: &str,
    ) -> Result<View, ToolError> {
        if name.trim().is_empty() {
            return Err(ToolError::Empty);
        }
        let owner = (!shared).then(|| login.to_owned());
        may_change(&owner, login, admin)?;
        let v = View {
            id: self.store.generate_id()?,
            name: name.trim().to_owned(),
            query: query.trim().trim_start_matches('?').to_owned(),
            owner,
        };
        self.views.insert(&v.id, &v)?;
        Ok(v)
    }

    pub fn delete_view(&self, login: &str, admin: bool, id: u64) -> Result<(), ToolError> {
        let v = self.views.get(&id)?.ok_or(ToolError::NotFound)?;
        may_change(&v.owner, login, admin)?;
        self.views.remove(&id)?;
        Ok(())
    }

    pub fn prefs(&self, login: &str) -> store::Result<Prefs> {
        Ok(self.prefs.get(&login.to_owned())?.unwrap_or_default())
    }

    pub fn set_prefs(&self, login: &str, prefs: &Prefs) -> store::Result<()> {
        self.prefs.insert(&login.to_owned(), prefs)
    }

    /// The account of a WeCom userid (for notices), if one is mapped.
    pub fn all_prefs(&self) -> store::Result<Vec<(String, Prefs)>> {
        self.prefs.iter().collect()
    }

    /// Remember that `login` opened ticket `id` at `now` (the last 500 tickets).
    pub fn seen(&self, login: &str, id: u64, now: i64) -> store::Result<()> {
        let mut p = self.prefs(login)?;
        p.seen.retain(|(t, _)| *t != id);
        p.seen.push((id, now));
        if p.seen.len() > 500 {
            p.seen.remove(0);
        }
        self.set_prefs(login, &p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_checked_and_filled() {
        assert_eq!(
            unknown_variable("您好 {报告人}，工单 {工单号} 已处理"),
            None
        );
        assert_eq!(unknown_variable("您好 {客户}"), Some("{客户}".into()));
        assert_eq!(
            fill(
                "{报告人}：{工单号}（{系统}）— {处理人}",
                "张三",
                "IT1",
                "交易",
                "li"
            ),
            "张三：IT1（交易）— li"
        );
    }

    #[test]
    fn shared_items_are_for_admins_and_personal_ones_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 8 << 20).expect("store");
        let tools = Tools::open(&store).expect("tools");
        assert!(matches!(
            tools.add_template("h", false, true, "共享", "x"),
            Err(ToolError::SharedIsAdmins)
        ));
        let shared = tools
            .add_template("admin", true, true, "共享", "您好")
            .expect("shared");
        let mine = tools
            .add_template("h", false, false, "我的", "稍等")
            .expect("mine");
        tools
            .add_template("other", false, false, "别人的", "x")
            .expect("other");
        let seen: Vec<u64> = tools
            .templates("h")
            .expect("list")
            .iter()
            .map(|t| t.id)
            .collect();
        assert!(seen.contains(&shared.id) && seen.contains(&mine.id));
        assert_eq!(seen.len(), 2);
        assert!(matches!(
            tools.delete_template("h", false, shared.id),
            Err(ToolError::SharedIsAdmins)
        ));
        assert!(matches!(
            tools.add_template("h", false, false, "坏的", "{未知}"),
            Err(ToolError::UnknownVariable(_))
        ));
    }
}
