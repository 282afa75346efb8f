//! The FAQ-first policy (routing step 5) and the answers to the questions it asks: "这个回答
//! 解决您的问题了吗？" after an answer, and "您是不是想问：1… 2… 3…" after a suggestion.

use super::route::{Step, Turn};
use super::session::Pending;
use crate::kb::log::{Decided, Feedback, QueryLog};
use crate::kb::{self, Decision};
use crate::script::eval::Answers;

const NOT_UNDERSTOOD: &str = "没有找到相关的答案。需要处理人员跟进请回复“提单”，我会一步步引导您提交；发送“帮助”查看我能做什么。";

/// The question after an FAQ answer.
const FAQ_ASK: &str =
    "这个回答解决您的问题了吗？回复“已解决”或“未解决”；需要处理人员跟进请回复“提单”。";

fn faq_answer(entry: &kb::Entry) -> String {
    format!("【{}】\n{}\n\n{FAQ_ASK}", entry.question, entry.answer)
}

impl Turn<'_, '_> {
    /// Log `question` (masked) with its hits and the decision; returns the log id.
    fn log_question(&self, question: &str, decided: Decided) -> Step<u64> {
        let entry = QueryLog {
            at: self.now,
            member: self.inbound.sender.clone(),
            channel: self.inbound.channel.as_str().to_owned(),
            question: crate::ident::mask_truncate(question, 200),
            hits: self
                .prep
                .hits
                .iter()
                .map(|h| (h.entry.id.clone(), h.confidence))
                .collect(),
            decided,
            feedback: None,
        };
        Ok(self.engine.faq_log.record_in(self.tx, &entry)?)
    }

    /// The FAQ-first policy: answer, suggest, or say so and offer the intake.
    pub(super) fn answer_question(&mut self, question: &str) -> Step {
        let prep = self.prep;
        let decision = kb::decide(&prep.hits, &self.engine.settings.faq);
        let decided = match &decision {
            Decision::Answer(_) => "answer",
            Decision::Suggest(_) => "suggest",
            Decision::NoMatch => "no_match",
        };
        metrics::counter!("helpdesk_faq_decisions_total", "decision" => decided).increment(1);
        // During an incident a question about it is answered by the incident: it is a
        // known issue, and the member hears its progress. (An unanswered question is also
        // counted and clustered: it may be the start of one.)
        let systems = self.scripts.systems();
        if let Some(system) = self.engine.incidents.system_named(question, &systems) {
            let report = crate::incidents::Report {
                system: &system,
                text: question,
                reporter: &self.inbound.sender,
                ticket: None,
            };
            let unanswered = matches!(decision, Decision::NoMatch);
            if let Some(incident) = self.report(&report, unanswered)? {
                self.log_question(question, Decided::NoMatch)?;
                self.say(crate::incidents::notify::known_issue(&incident));
                return Ok(());
            }
        }
        match decision {
            Decision::Answer(hit) => {
                let entry_id = hit.entry.id.clone();
                let decided = Decided::Answered {
                    entry: entry_id.clone(),
                };
                let log_id = self.log_question(question, decided)?;
                self.say(faq_answer(&hit.entry));
                self.session.pending = Some(Pending::FaqFeedback {
                    log_id,
                    question: question.to_owned(),
                    entry_id,
                });
            }
            Decision::Suggest(hits) => {
                let entries: Vec<String> = hits.iter().map(|h| h.entry.id.clone()).collect();
                let decided = Decided::Suggested {
                    entries: entries.clone(),
                };
                let log_id = self.log_question(question, decided)?;
                let list: Vec<String> = hits
                    .iter()
                    .enumerate()
                    .map(|(i, h)| format!("{}. {}", i + 1, h.entry.question))
                    .collect();
                self.say(format!(
                    "您是不是想问：\n{}\n\n回复序号查看答案；都不是请回复“提单”上报。",
                    list.join("\n")
                ));
                self.session.pending = Some(Pending::FaqChoice {
                    log_id,
                    question: question.to_owned(),
                    entries,
                });
            }
            Decision::NoMatch => {
                self.log_question(question, Decided::NoMatch)?;
                self.say(NOT_UNDERSTOOD);
            }
        }
        Ok(())
    }

    /// Handle a reply to the last question the bot asked outside a dialog. Returns whether it
    /// was one.
    pub(super) fn on_pending(&mut self, text: &str, pending: Pending) -> Step<bool> {
        if let Pending::FollowUpChoice {
            tickets,
            text: kept,
            images,
        } = pending
        {
            return self.on_follow_up_choice(text, &tickets, &kept, &images);
        }
        let key = crate::script::word_key(text);
        let solved = matches!(
            key.as_str(),
            "已解决" | "解决了" | "已经解决" | "好了" | "谢谢" | "明白了"
        );
        let unsolved = matches!(
            key.as_str(),
            "未解决" | "没解决" | "没有解决" | "还没解决" | "不是" | "都不是" | "没用" | "不行"
        );
        let trigger = self.scripts.triggered(text).is_some();
        let (log_id, question) = match &pending {
            Pending::FaqFeedback {
                log_id, question, ..
            }
            | Pending::FaqChoice {
                log_id, question, ..
            } => (*log_id, question.clone()),
            Pending::FollowUpChoice { .. } => return Ok(false),
        };
        let faq_log = &self.engine.faq_log;
        if trigger || unsolved {
            let fb = if trigger {
                Feedback::Ticket
            } else {
                Feedback::Unsolved
            };
            faq_log.feedback_in(self.tx, log_id, fb)?;
            // The intake's intro says what happens and that the question is kept.
            self.start_report(&question);
            return Ok(true);
        }
        match pending {
            Pending::FaqFeedback { .. } if solved => {
                faq_log.feedback_in(self.tx, log_id, Feedback::Solved)?;
                self.say("很高兴帮到您！还有问题随时问我。");
                Ok(true)
            }
            Pending::FaqChoice { entries, .. } => {
                let picked = crate::ident::normalize(text)
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| entries.get(n.checked_sub(1)?))
                    .and_then(|id| self.engine.kb.current().get(id).cloned());
                let Some(entry) = picked else {
                    return Ok(false);
                };
                faq_log.chosen_in(self.tx, log_id, &entry.id)?;
                self.say(faq_answer(&entry));
                self.session.pending = Some(Pending::FaqFeedback {
                    log_id,
                    question,
                    entry_id: entry.id.clone(),
                });
                Ok(true)
            }
            Pending::FaqFeedback { .. } | Pending::FollowUpChoice { .. } => Ok(false),
        }
    }

    /// Start the report flow with `question` kept as the description.
    fn start_report(&mut self, question: &str) {
        let Some(flow) = self.scripts.report_flow() else {
            return;
        };
        let prefill = Answers {
            description: Some(question.to_owned()),
            ..Answers::default()
        };
        self.begin(flow, prefill);
    }
}
