//! A training session's questions and raised hands: people of the audience ask in writing and
//! up-vote each other's questions; the trainer marks them answered; a raised hand asks to
//! speak. This module holds the rules and the order the trainer sees; `store` keeps them,
//! `http_questions` serves them.

use serde::Serialize;

use crate::network::{SiteId, UserId};

/// The longest question, in characters.
pub const MAX_QUESTION: usize = 1000;
/// Questions one person may have waiting (not answered) in one session: enough for anyone,
/// too few to flood the trainer's list.
pub const MAX_OPEN_PER_PERSON: usize = 20;

pub fn new_question_id() -> String {
    crate::ids::prefixed_id("bq_")
}

pub fn is_question_id(s: &str) -> bool {
    crate::ids::is_prefixed_id(s, "bq_")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Question {
    pub id: String,
    #[serde(skip)]
    pub broadcast: String,
    pub author: UserId,
    pub site: SiteId,
    pub text: String,
    pub created_at: i64,
    pub answered_at: Option<i64>,
    pub votes: i64,
    /// Whether the person asking for the list has up-voted it.
    pub voted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hand {
    pub user: UserId,
    pub site: SiteId,
    pub raised_at: i64,
}

/// The question as it will be kept: trimmed, not empty, not too long.
pub fn clean(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("text: write the question".into());
    }
    if t.chars().count() > MAX_QUESTION {
        return Err(format!("text: at most {MAX_QUESTION} characters"));
    }
    Ok(t.to_string())
}

/// The order the trainer and the audience see: waiting questions first, the most up-voted
/// first among them, then the oldest; answered ones after, the last answered first.
pub fn order(list: &mut [Question]) {
    list.sort_by(|a, b| {
        a.answered_at
            .is_some()
            .cmp(&b.answered_at.is_some())
            .then(b.answered_at.cmp(&a.answered_at))
            .then(b.votes.cmp(&a.votes))
            .then(a.created_at.cmp(&b.created_at))
            .then(a.id.cmp(&b.id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(id: &str, votes: i64, created_at: i64, answered_at: Option<i64>) -> Question {
        Question {
            id: id.into(),
            broadcast: "bc".into(),
            author: "dr-zhao".parse().unwrap(),
            site: "island-clinic".parse().unwrap(),
            text: "?".into(),
            created_at,
            answered_at,
            votes,
            voted: false,
        }
    }

    #[test]
    fn waiting_questions_come_first_by_votes_then_age() {
        let mut l = vec![
            q("a", 0, 1, None),
            q("b", 3, 5, None),
            q("c", 9, 0, Some(10)),
            q("d", 3, 2, None),
            q("e", 0, 3, Some(20)),
        ];
        order(&mut l);
        let ids: Vec<&str> = l.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, ["d", "b", "a", "e", "c"]);
    }

    #[test]
    fn questions_are_trimmed_and_bounded() {
        assert_eq!(clean("  为什么 PR 间期延长？ \n").unwrap(), "为什么 PR 间期延长？");
        assert!(clean(" \n ").is_err());
        assert!(clean(&"长".repeat(MAX_QUESTION)).is_ok());
        assert!(clean(&"长".repeat(MAX_QUESTION + 1)).is_err());
        assert!(is_question_id(&new_question_id()));
        assert!(!is_question_id(&crate::broadcast::new_broadcast_id()));
    }
}
