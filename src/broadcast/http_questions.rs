//! `/api/broadcasts/{id}/questions` and `…/hand`: people of a session's audience ask in
//! writing, up-vote, and raise a hand; the session's trainer marks questions answered and
//! lowers hands. Every step is audited with the change, in one transaction, and the people in
//! the session (its trainer, everyone connected to its media) are told over their sockets.
//! A question's text may name a patient: it goes to the trail's event as a length only.

use axum::Json;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{bad, readable, session_event, trainer_only};
use super::questions::{self, Hand, MAX_OPEN_PER_PERSON, Question};
use super::{Broadcast, State, store};
use crate::audit::Outcome;
use crate::auth::RequestCtx;
use crate::auth::policy::{BroadcastRead, PeopleDirectory, Permit, Target};
use crate::error::{ApiError, JsonBody, PathParams};
use crate::network::UserId;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskBody {
    pub text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    pub up: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnsweredBody {
    pub answered: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandBody {
    pub raised: bool,
    /// Whose hand (the trainer lowers others'); default the caller's.
    #[serde(default)]
    pub user: Option<String>,
}

/// Display names of the people in `ids`, for the page.
pub(super) async fn names(
    ctx: &RequestCtx,
    ids: Vec<UserId>,
) -> Result<std::collections::HashMap<String, String>, ApiError> {
    let directory: Permit<PeopleDirectory> = ctx.permit(Target::network()).await?;
    let people = crate::network::store::people(&ctx.state.db, &directory, &ids).await?;
    Ok(people.into_iter().map(|p| (p.id, p.display_name)).collect())
}

fn question_view(q: &Question, names: &std::collections::HashMap<String, String>) -> Value {
    let mut v = serde_json::to_value(q).unwrap_or_default();
    v["author_name"] = json!(names.get(q.author.as_str()));
    v["created_at"] = json!(crate::time::rfc3339(q.created_at));
    v["answered_at"] = json!(q.answered_at.map(crate::time::rfc3339));
    v
}

/// The session if it is still open to questions.
pub(super) fn open(b: &Broadcast) -> Result<(), ApiError> {
    match b.state {
        State::Ended | State::Cancelled => Err(ApiError::conflict(
            "broadcast_over",
            format!("the session is {}", b.state.as_str()),
        )),
        _ => Ok(()),
    }
}

/// Tells the session's trainer, the people connected to it, and `also`, that its questions or
/// hands (`what`: "questions") or its stage ("stage") changed.
pub(super) async fn tell(
    ctx: &RequestCtx,
    b: &Broadcast,
    also: &UserId,
    what: &'static str,
) -> Result<(), ApiError> {
    let mut users = store::connected_people(&ctx.state.db, &b.id).await?;
    users.push(b.trainer.to_string());
    users.push(also.to_string());
    users.sort();
    users.dedup();
    ctx.state.hub.notify_broadcast(users, &b.id, what).await;
    Ok(())
}

/// One question as the caller sees it, or 404.
async fn one(
    ctx: &RequestCtx,
    permit: &Permit<BroadcastRead>,
    id: &str,
) -> Result<Question, ApiError> {
    let found = match questions::is_question_id(id) {
        true => store::question(&ctx.state.db, permit, id, &ctx.actor.user.id).await?,
        false => None,
    };
    found.ok_or(ApiError::NotFound { what: "question" })
}

async fn answer_one(ctx: &RequestCtx, q: &Question) -> Result<Json<Value>, ApiError> {
    let names = names(ctx, vec![q.author.clone()]).await?;
    Ok(Json(question_view(q, &names)))
}

/// `GET /api/broadcasts/{id}/questions`: the questions (waiting first, most up-voted first)
/// and the hands raised.
pub async fn list(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let (b, permit) = readable(&ctx, &id).await?;
    let me = &ctx.actor.user.id;
    let list = store::questions(&ctx.state.db, &permit, me).await?;
    let hands = store::hands(&ctx.state.db, &permit).await?;
    let mut ids: Vec<UserId> = list.iter().map(|q| q.author.clone()).collect();
    ids.extend(hands.iter().map(|h| h.user.clone()));
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.dedup();
    let names = names(&ctx, ids).await?;
    let hands: Vec<Value> = hands
        .iter()
        .map(|h| {
            json!({"user": h.user, "site": h.site, "name": names.get(h.user.as_str()),
                   "raised_at": crate::time::rfc3339(h.raised_at)})
        })
        .collect();
    Ok(Json(json!({
        "questions": list.iter().map(|q| question_view(q, &names)).collect::<Vec<_>>(),
        "hands": hands,
        "trainer": &b.trainer == me,
    })))
}

/// `POST /api/broadcasts/{id}/questions`: a person who may see the session asks.
pub async fn ask(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<AskBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (b, permit) = readable(&ctx, &id).await?;
    open(&b)?;
    let text = questions::clean(&body.text).map_err(bad)?;
    let me = &ctx.actor.user;
    if store::open_questions_of(&ctx.state.db, &permit, &me.id).await? >= MAX_OPEN_PER_PERSON as i64
    {
        return Err(ApiError::conflict(
            "too_many_questions",
            format!("at most {MAX_OPEN_PER_PERSON} questions waiting per person"),
        ));
    }
    let q = Question {
        id: questions::new_question_id(),
        broadcast: b.id.clone(),
        author: me.id.clone(),
        site: me.site.clone(),
        text,
        created_at: ctx.now(),
        answered_at: None,
        votes: 0,
        voted: false,
    };
    let detail = format!("question {} ({} characters)", q.id, q.text.chars().count());
    let event = session_event(&ctx, &b, "broadcast.ask", Outcome::Success, Some(detail));
    store::ask(&ctx.state.db, &permit, &q, &event).await?;
    tell(&ctx, &b, &me.id, "questions").await?;
    Ok((StatusCode::CREATED, answer_one(&ctx, &q).await?))
}

/// `PUT /api/broadcasts/{id}/questions/{q}/vote`: up-votes a question (`{"up": true}`) or
/// takes the vote back; one vote per person, however often it is sent.
pub async fn vote(
    ctx: RequestCtx,
    PathParams((id, qid)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<VoteBody>,
) -> Result<Json<Value>, ApiError> {
    let (b, permit) = readable(&ctx, &id).await?;
    open(&b)?;
    let q = one(&ctx, &permit, &qid).await?;
    let me = &ctx.actor.user.id;
    let event = session_event(
        &ctx,
        &b,
        if body.up { "broadcast.vote" } else { "broadcast.unvote" },
        Outcome::Success,
        Some(format!("question {}", q.id)),
    );
    store::vote(&ctx.state.db, &permit, &q.id, me, body.up, &event).await?;
    tell(&ctx, &b, me, "questions").await?;
    answer_one(&ctx, &one(&ctx, &permit, &qid).await?).await
}

/// `PUT /api/broadcasts/{id}/questions/{q}/answered`: the session's trainer marks a question
/// answered (`{"answered": true}`), or waiting again.
pub async fn answered(
    ctx: RequestCtx,
    PathParams((id, qid)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<AnsweredBody>,
) -> Result<Json<Value>, ApiError> {
    let (b, permit) = readable(&ctx, &id).await?;
    trainer_only(
        &ctx,
        &b,
        "broadcast.answer",
        "only the session's trainer marks questions answered",
    )
    .await?;
    let q = one(&ctx, &permit, &qid).await?;
    let at = body.answered.then(|| ctx.now());
    let event = session_event(
        &ctx,
        &b,
        "broadcast.answer",
        Outcome::Success,
        Some(format!("question {} {}", q.id, if body.answered { "answered" } else { "reopened" })),
    );
    store::mark_answered(&ctx.state.db, &permit, &q.id, at, &event).await?;
    tell(&ctx, &b, &q.author, "questions").await?;
    answer_one(&ctx, &one(&ctx, &permit, &qid).await?).await
}

/// `PUT /api/broadcasts/{id}/hand`: raises or lowers the caller's hand; the trainer may lower
/// anyone's (`{"raised": false, "user": "dr-zhao"}`).
pub async fn hand(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<HandBody>,
) -> Result<Json<Value>, ApiError> {
    let (b, permit) = readable(&ctx, &id).await?;
    open(&b)?;
    let me = &ctx.actor.user;
    let whose: UserId = match &body.user {
        None => me.id.clone(),
        Some(u) => u.parse().map_err(|_| bad(format!("user: {u} is not a user id")))?,
    };
    if whose != me.id {
        trainer_only(&ctx, &b, "broadcast.hand", "only the session's trainer lowers others' hands")
            .await?;
        if body.raised {
            return Err(bad("raised: a hand is raised by its owner only"));
        }
    }
    let hand = Hand { user: whose.clone(), site: me.site.clone(), raised_at: ctx.now() };
    let event = session_event(
        &ctx,
        &b,
        "broadcast.hand",
        Outcome::Success,
        Some(format!("{} {}", whose, if body.raised { "raised" } else { "lowered" })),
    );
    store::set_hand(&ctx.state.db, &permit, &hand, body.raised, &event).await?;
    tell(&ctx, &b, &whose, "questions").await?;
    let hands = store::hands(&ctx.state.db, &permit).await?;
    Ok(Json(json!({ "hands": hands })))
}
