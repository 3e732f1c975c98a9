//! Campaigns: a campaign's calls counted (`GET /v1/campaigns/{name}`), and its queued calls
//! paused, resumed or canceled (`POST /v1/campaigns/{name}/{action}`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::call_request;
use super::error::ApiError;
use super::openapi::{CampaignAnswer, ErrorEnvelope};
use crate::lifecycle::status::CallStatus;
use crate::store::OutboundCalls;

/// A campaign's calls, counted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignSummary {
    pub campaign: String,
    pub paused: bool,
    pub total: i64,
    /// Calls by status (`queued`, `completed`, …).
    pub by_status: BTreeMap<String, i64>,
    /// Ended calls by `end_reason`.
    pub by_end_reason: BTreeMap<String, i64>,
    /// Calls whose AI reported an outcome.
    pub outcomes_reported: i64,
}

/// `GET /v1/campaigns/{name}`.
#[utoipa::path(get, path = "/v1/campaigns/{name}", tag = "campaigns",
    params(("name" = String, Path, description = "1 … 100 letters, digits, '-', '_' or '.'")),
    responses(
        (status = 200, description = "its calls counted (a name with no calls: all zero)", body = CampaignSummary),
        (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ))]
pub async fn campaign(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<CampaignSummary>, ApiError> {
    if !call_request::valid_campaign(&name) {
        return Err(ApiError::invalid("campaign", "must be 1 to 100 letters, digits, '-', '_' or '.'"));
    }
    let c = state.store.campaign_counts(&name).await?;
    Ok(Json(CampaignSummary {
        campaign: name,
        paused: c.paused,
        total: c.total,
        by_status: c.by_status,
        by_end_reason: c.by_end_reason,
        outcomes_reported: c.outcomes_reported,
    }))
}

/// `POST /v1/campaigns/{name}/pause` | `resume` | `cancel`: queued calls of the campaign stop
/// being dialled, start again, or are canceled (live calls are left alone). A pause is a
/// property of the name: pausing a campaign with no calls yet is fine, and calls created in a
/// paused campaign wait too.
#[utoipa::path(post, path = "/v1/campaigns/{name}/{action}", tag = "campaigns",
    params(("name" = String, Path, description = "1 … 100 letters, digits, '-', '_' or '.'"),
           ("action" = String, Path, description = "pause, resume or cancel")),
    responses(
        (status = 200, body = CampaignAnswer),
        (status = 401, body = ErrorEnvelope), (status = 404, description = "not an action", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ))]
pub async fn campaign_action(State(state): State<AppState>, Path((name, action)): Path<(String, String)>) -> Response {
    if !call_request::valid_campaign(&name) {
        return ApiError::invalid("campaign", "must be 1 to 100 letters, digits, '-', '_' or '.'").into_response();
    }
    let now = Timestamp::now().as_millisecond();
    let answer = match action.as_str() {
        "pause" | "resume" => {
            state.store.set_campaign_paused(&name, action == "pause", now).await.map(|queued| CampaignAnswer {
                campaign: name.clone(),
                paused: Some(action == "pause"),
                queued: Some(queued),
                canceled: None,
                calls: None,
            })
        }
        "cancel" => state.store.cancel_campaign(&name, now).await.map(|ids| {
            for _ in &ids {
                crate::telemetry::call_transition(CallStatus::Canceled.as_str());
            }
            CampaignAnswer {
                campaign: name.clone(),
                paused: None,
                queued: None,
                canceled: Some(ids.len()),
                calls: Some(ids),
            }
        }),
        _ => return ApiError::not_found("campaign action (pause, resume, cancel)").into_response(),
    };
    match answer {
        Ok(body) => Json(body).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
