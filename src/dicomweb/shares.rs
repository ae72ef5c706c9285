//! `POST /api/studies/{study}/shares`: one site lets another see a study.

use super::*;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    site: SiteId,
}

/// `POST /api/studies/{study}/shares {"site": …}`: lets another site see a study.
pub async fn share(
    ctx: RequestCtx,
    PathParams(study): PathParams<String>,
    JsonBody(body): JsonBody<ShareBody>,
) -> Result<StatusCode, ApiError> {
    crate::auth::existing_site(&ctx.state, body.site.as_str()).await?;
    if !is_uid(&study) {
        return Err(ApiError::NotFound { what: "study" });
    }
    let (origin, shared) = store::study_sites(&ctx.state.db, &study)
        .await?
        .ok_or(ApiError::NotFound { what: "study" })?;
    let mut target = Target::site(&origin, "study", Some(study.clone()));
    target.shared_with = shared;
    let permit: Permit<StudyShare> = ctx.permit(target).await?;
    store::share_study(&ctx.state.db, &permit, &body.site, ctx.actor.user.id.as_str(), ctx.now())
        .await?;
    ctx.audit(
        "study.shared",
        "study",
        Some(study),
        Some(origin.to_string()),
        Outcome::Success,
        Some(format!("with {}", body.site)),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
