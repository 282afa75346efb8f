//! Ticket status, category, priority and the state machine.
//!
//! ```text
//! 待处理 ─▶ 处理中 ─▶ 待补充 ─▶ 处理中
//!    │        │         │
//!    └────────┴─────────┴──▶ 已解决 ─▶ 已关闭
//!                              │
//!                              └──▶ 处理中 (reopened)
//! ```
//! Any open status may also be closed directly (duplicate, invalid report). 已关闭 is final.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 待处理
    New,
    /// 处理中
    InProgress,
    /// 待补充: waiting for the agent; SLA clocks pause.
    NeedInfo,
    /// 已解决
    Resolved,
    /// 已关闭
    Closed,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::New,
        Status::InProgress,
        Status::NeedInfo,
        Status::Resolved,
        Status::Closed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Status::New => "待处理",
            Status::InProgress => "处理中",
            Status::NeedInfo => "待补充",
            Status::Resolved => "已解决",
            Status::Closed => "已关闭",
        }
    }

    /// Stable key for indexes and URLs.
    pub fn key(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::InProgress => "in_progress",
            Status::NeedInfo => "need_info",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|st| st.key() == s || st.label() == s)
    }

    /// Still needs handler work.
    pub fn is_open(self) -> bool {
        matches!(self, Status::New | Status::InProgress | Status::NeedInfo)
    }

    /// Whether the state machine allows `self → to`.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (New, InProgress | NeedInfo | Resolved | Closed)
                | (InProgress, NeedInfo | Resolved | Closed)
                | (NeedInfo, InProgress | Resolved | Closed)
                | (Resolved, Closed | InProgress)
        )
    }
}

/// Root-cause category set by handlers (required to resolve).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// 咨询类
    Consulting,
    /// 数据类
    Data,
    /// 程序类
    Program,
    /// 其他类
    Other,
}

impl Category {
    pub const ALL: [Category; 4] = [
        Category::Consulting,
        Category::Data,
        Category::Program,
        Category::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Category::Consulting => "咨询类",
            Category::Data => "数据类",
            Category::Program => "程序类",
            Category::Other => "其他类",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Category::Consulting => "consulting",
            Category::Data => "data",
            Category::Program => "program",
            Category::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL
            .into_iter()
            .find(|c| c.key() == s || c.label() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Priority::P1, Priority::P2, Priority::P3, Priority::P4];

    pub fn label(self) -> &'static str {
        match self {
            Priority::P1 => "P1 紧急",
            Priority::P2 => "P2 高",
            Priority::P3 => "P3 普通",
            Priority::P4 => "P4 低",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL
            .into_iter()
            .find(|p| p.key().eq_ignore_ascii_case(s))
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use Status::*;
        let allowed = [
            (New, InProgress),
            (New, NeedInfo),
            (New, Resolved),
            (New, Closed),
            (InProgress, NeedInfo),
            (InProgress, Resolved),
            (InProgress, Closed),
            (NeedInfo, InProgress),
            (NeedInfo, Resolved),
            (NeedInfo, Closed),
            (Resolved, Closed),
            (Resolved, InProgress),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?} → {to:?}"
                );
            }
        }
        assert!(!Closed.can_become(InProgress), "closed is final");
        assert!(!Resolved.can_become(New));
        assert!(!New.can_become(New));
    }

    #[test]
    fn labels_and_keys_parse_back() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.key()), Some(s));
            assert_eq!(Status::parse(s.label()), Some(s));
        }
        for c in Category::ALL {
            assert_eq!(Category::parse(c.label()), Some(c));
        }
        assert_eq!(Priority::parse("p2"), Some(Priority::P2));
        assert!(Status::New.is_open() && !Status::Resolved.is_open());
    }
}
