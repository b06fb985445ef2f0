//! What nodes send each other besides log records: an owner's answer to a
//! submitted record, and a read forwarded to an owner with its reply.
//!
//! Owns: the version 1 wire forms (answers; reads: a customer's progress,
//! a partition's export) (bincode through `persist::codec`, with
//! the snapshot model's iterations and effects) and their conversions. An
//! engine error crosses as its kind and message; what only the sending node
//! can know (an internal failure's detail) stays in its log.

use serde::{Deserialize, Serialize};

use crate::domain::{
    AchievementId, ApplicationId, CustomerId, EventResult, FieldError, Iteration, Outcome, Reason,
};
use crate::engine::remote::Answer;
use crate::engine::EngineError;
use crate::persist::codec;
use crate::persist::model::{EffectV1, IterationV1};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
enum ErrorV1 {
    Invalid(Vec<(String, String)>),
    AchievementNotFound,
    Unavailable,
    Overloaded,
    Internal,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
enum AnswerV1 {
    Event {
        outcome: u8,
        reason: Option<u8>,
        effects: Vec<EffectV1>,
    },
    Erased(u64),
    Error(ErrorV1),
}

/// A read asked of a partition's owner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Query {
    /// A customer's iterations in some achievements.
    Progress {
        customer: String,
        achievements: Vec<u64>,
    },
    /// Every customer's iterations in an achievement (the partition's part
    /// of an export).
    Export { application: u64, achievement: u64 },
}

/// A read as the owner runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Progress(CustomerId, Vec<AchievementId>),
    Export(ApplicationId, AchievementId),
}

/// An owner's reply to a read.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadReply {
    Progress(Vec<Vec<Iteration>>),
    Export(Vec<(CustomerId, Vec<Iteration>)>),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
enum ReplyV1 {
    Progress(Vec<Vec<IterationV1>>),
    Export(Vec<(String, Vec<IterationV1>)>),
    Error(ErrorV1),
}

/// Why a wire message cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("a cluster message cannot be read: {0}")]
pub struct WireError(String);

fn outcome_code(o: Outcome) -> u8 {
    match o {
        Outcome::Applied => 0,
        Outcome::Duplicate => 1,
        Outcome::Rejected => 2,
    }
}

fn outcome_from(code: u8) -> Result<Outcome, WireError> {
    match code {
        0 => Ok(Outcome::Applied),
        1 => Ok(Outcome::Duplicate),
        2 => Ok(Outcome::Rejected),
        n => Err(WireError(format!("unknown outcome {n}"))),
    }
}

fn reason_code(r: Reason) -> u8 {
    Reason::ALL.iter().position(|x| *x == r).unwrap_or(0) as u8
}

fn reason_from(code: u8) -> Result<Reason, WireError> {
    Reason::ALL
        .get(code as usize)
        .copied()
        .ok_or_else(|| WireError(format!("unknown reason {code}")))
}

fn error_to(e: &EngineError) -> ErrorV1 {
    match e {
        EngineError::Invalid(fields) => ErrorV1::Invalid(
            fields
                .iter()
                .map(|f| (f.pointer.clone(), f.message.clone()))
                .collect(),
        ),
        // The only entity an owner can miss: an achievement deleted since
        // the record was accepted.
        EngineError::NotFound { .. } => ErrorV1::AchievementNotFound,
        EngineError::Conflict { .. } | EngineError::Internal(_) => ErrorV1::Internal,
        EngineError::Overloaded => ErrorV1::Overloaded,
        EngineError::Unavailable(_) => ErrorV1::Unavailable,
    }
}

fn error_from(e: ErrorV1) -> EngineError {
    match e {
        ErrorV1::Invalid(fields) => EngineError::Invalid(
            fields
                .into_iter()
                .map(|(p, m)| FieldError::new(p, m))
                .collect(),
        ),
        ErrorV1::AchievementNotFound => EngineError::not_found("achievement", "achievementId"),
        ErrorV1::Unavailable => {
            EngineError::Unavailable("the partition's owner cannot take the request now; retry")
        }
        ErrorV1::Overloaded => EngineError::Overloaded,
        ErrorV1::Internal => EngineError::Internal("the partition's owner failed"),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain data of a fixed shape: encoding cannot fail.
    codec::encode(value).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    codec::decode(bytes).map_err(|e| WireError(e.to_string()))
}

pub fn encode_answer(answer: &Result<Answer, EngineError>) -> Vec<u8> {
    encode(&match answer {
        Ok(Answer::Event(r)) => AnswerV1::Event {
            outcome: outcome_code(r.outcome),
            reason: r.reason.map(reason_code),
            effects: r.effects.iter().map(EffectV1::from).collect(),
        },
        Ok(Answer::Erased(n)) => AnswerV1::Erased(*n as u64),
        Err(e) => AnswerV1::Error(error_to(e)),
    })
}

pub fn decode_answer(bytes: &[u8]) -> Result<Result<Answer, EngineError>, WireError> {
    Ok(match decode::<AnswerV1>(bytes)? {
        AnswerV1::Event {
            outcome,
            reason,
            effects,
        } => Ok(Answer::Event(EventResult {
            outcome: outcome_from(outcome)?,
            reason: reason.map(reason_from).transpose()?,
            effects: effects
                .iter()
                .map(|e| e.to_effect().map_err(|e| WireError(e.to_string())))
                .collect::<Result<_, _>>()?,
        })),
        AnswerV1::Erased(n) => Ok(Answer::Erased(n as usize)),
        AnswerV1::Error(e) => Err(error_from(e)),
    })
}

fn customer(raw: &str) -> Result<CustomerId, WireError> {
    CustomerId::parse(raw, "/integrationId").map_err(|e| WireError(e.to_string()))
}

fn iterations(list: &[IterationV1]) -> Result<Vec<Iteration>, WireError> {
    list.iter()
        .map(|i| i.to_iteration().map_err(|e| WireError(e.to_string())))
        .collect()
}

impl Query {
    pub fn progress(customer: &CustomerId, achievements: &[AchievementId]) -> Query {
        Query::Progress {
            customer: customer.as_str().to_owned(),
            achievements: achievements.iter().map(|a| a.0).collect(),
        }
    }

    pub fn export(application: ApplicationId, achievement: AchievementId) -> Query {
        Query::Export {
            application: application.0,
            achievement: achievement.0,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Read, WireError> {
        Ok(match decode::<Query>(bytes)? {
            Query::Progress {
                customer: c,
                achievements,
            } => Read::Progress(
                customer(&c)?,
                achievements.into_iter().map(AchievementId).collect(),
            ),
            Query::Export {
                application,
                achievement,
            } => Read::Export(ApplicationId(application), AchievementId(achievement)),
        })
    }
}

pub fn encode_reply(reply: &Result<ReadReply, EngineError>) -> Vec<u8> {
    let list = |l: &[Iteration]| l.iter().map(IterationV1::from).collect::<Vec<_>>();
    encode(&match reply {
        Ok(ReadReply::Progress(lists)) => {
            ReplyV1::Progress(lists.iter().map(|l| list(l)).collect())
        }
        Ok(ReadReply::Export(rows)) => ReplyV1::Export(
            rows.iter()
                .map(|(c, its)| (c.as_str().to_owned(), list(its)))
                .collect(),
        ),
        Err(e) => ReplyV1::Error(error_to(e)),
    })
}

pub fn decode_reply(bytes: &[u8]) -> Result<Result<ReadReply, EngineError>, WireError> {
    Ok(match decode::<ReplyV1>(bytes)? {
        ReplyV1::Progress(lists) => Ok(ReadReply::Progress(
            lists
                .iter()
                .map(|l| iterations(l))
                .collect::<Result<_, _>>()?,
        )),
        ReplyV1::Export(rows) => Ok(ReadReply::Export(
            rows.iter()
                .map(|(c, its)| Ok((customer(c)?, iterations(its)?)))
                .collect::<Result<_, WireError>>()?,
        )),
        ReplyV1::Error(e) => Err(error_from(e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Effect, ProgressStatus, ProgressTrackerId};
    use chrono::TimeZone;
    use rust_decimal::Decimal;

    #[test]
    fn answers_and_progress_cross_the_wire_unchanged() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let result = EventResult {
            outcome: Outcome::Rejected,
            reason: Some(Reason::PeriodEnded),
            effects: vec![Effect::Start {
                tracker: ProgressTrackerId(7 << 24),
                target: Decimal::new(500, 0),
                start: at,
                end: None,
            }],
        };
        for answer in [
            Ok(Answer::Event(result.clone())),
            Ok(Answer::Erased(3)),
            Err(EngineError::field("/amount", "must be positive")),
        ] {
            let back = decode_answer(&encode_answer(&answer)).unwrap();
            match (&answer, &back) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(EngineError::Invalid(a)), Err(EngineError::Invalid(b))) => assert_eq!(a, b),
                other => panic!("changed on the wire: {other:?}"),
            }
        }
        let gone = decode_answer(&encode_answer(&Err(EngineError::not_found(
            "achievement",
            "achievementId",
        ))))
        .unwrap();
        assert!(matches!(gone, Err(EngineError::NotFound { .. })));
        let iteration = Iteration {
            id: ProgressTrackerId(9),
            status: ProgressStatus::Completed,
            progress: Decimal::new(125, 1),
            start: at,
            end: None,
            completion: Some(at),
        };
        let lists = vec![vec![iteration.clone()], vec![]];
        let back = decode_reply(&encode_reply(&Ok(ReadReply::Progress(lists.clone())))).unwrap();
        assert_eq!(back.unwrap(), ReadReply::Progress(lists));
        let c1 = CustomerId::parse("c-1", "/x").unwrap();
        let rows = vec![(c1.clone(), vec![iteration])];
        let back = decode_reply(&encode_reply(&Ok(ReadReply::Export(rows.clone())))).unwrap();
        assert_eq!(back.unwrap(), ReadReply::Export(rows));
        let q = Query::progress(&c1, &[AchievementId(4), AchievementId(5)]);
        assert_eq!(
            Query::decode(&q.encode()).unwrap(),
            Read::Progress(c1, vec![AchievementId(4), AchievementId(5)])
        );
        let q = Query::export(ApplicationId(1), AchievementId(4));
        assert_eq!(
            Query::decode(&q.encode()).unwrap(),
            Read::Export(ApplicationId(1), AchievementId(4))
        );
        assert!(decode_answer(b"\xff\xff").is_err());
    }
}
