//! Operations routes that need the management key: taking and listing
//! snapshots, and a cluster's nodes and ownership.

use super::routes::Routes;
use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::auth::Management;
use super::error::ApiError;
use super::json::Time;
use super::AppState;
use crate::engine::EngineError;
use crate::persist::store::SnapshotInfo;

pub fn configure(r: &mut Routes) {
    r.post("/v1/admin/snapshots", take_snapshot)
        .get("/v1/admin/snapshots", list_snapshots)
        .get("/v1/admin/cluster", cluster);
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Cluster)]
struct ClusterDto {
    node_id: String,
    partitions: u32,
    nodes: Vec<ClusterNodeDto>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ClusterNode)]
struct ClusterNodeDto {
    node_id: String,
    address: String,
    partitions: Vec<u32>,
    last_seen: Time,
}

/// The cluster's live nodes and the partitions each holds a lease on.
#[utoipa::path(get, path = "/v1/admin/cluster", tag = "operations", security(("ManagementKey" = [])), responses((status = 200, description = "Cluster mode: the live nodes and their partitions", body = ClusterDto)))]
async fn cluster(_: Management, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(service) = state.cluster.as_ref() else {
        return Err(ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            "this node does not run in cluster mode (start it with --cluster)",
            None,
        ));
    };
    let node = service
        .node()
        .ok_or(EngineError::Unavailable("the node is joining the cluster"))?;
    let view = node.view().await.map_err(|e| {
        tracing::warn!(error = %e, "cannot read the cluster's ownership");
        ApiError::from(EngineError::Unavailable(
            "the cluster cannot be read now; retry",
        ))
    })?;
    Ok(HttpResponse::Ok().json(ClusterDto {
        node_id: view.node_id,
        partitions: view.partitions,
        nodes: view
            .nodes
            .into_iter()
            .map(|(n, partitions)| ClusterNodeDto {
                node_id: n.id,
                address: n.address,
                partitions,
                last_seen: Time(n.last_seen),
            })
            .collect(),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Snapshot)]
struct SnapshotDto {
    id: u64,
    created_at: Time,
    pairs: u64,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
}

impl From<&SnapshotInfo> for SnapshotDto {
    fn from(s: &SnapshotInfo) -> Self {
        SnapshotDto {
            id: s.id,
            created_at: Time(s.created),
            pairs: s.pairs,
            bytes: s.bytes,
            duration_ms: s.duration.map(|d| d.as_millis() as u64),
        }
    }
}

fn store(state: &AppState) -> Result<std::sync::Arc<crate::persist::store::Store>, ApiError> {
    if state.cluster.is_some() {
        return Err(ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            "this node runs in cluster mode: each partition's owner writes its snapshot to \
             JetStream every --snapshot-interval seconds and when it hands the partition \
             over; see GET /v1/admin/cluster",
            None,
        ));
    }
    state
        .store
        .get()
        .cloned()
        .ok_or_else(|| EngineError::Unavailable("the engine is restoring its state").into())
}

#[utoipa::path(post, path = "/v1/admin/snapshots", tag = "operations", security(("ManagementKey" = [])), responses((status = 201, description = "The snapshot just written", body = SnapshotDto)))]
async fn take_snapshot(
    _: Management,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let store = store(&state)?;
    let engine = state.engine.clone();
    let info = web::block(move || store.snapshot(&engine))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            tracing::error!(error = %e, "snapshot failed");
            ApiError::from(EngineError::Unavailable(
                "the snapshot could not be written; see the server log",
            ))
        })?;
    Ok(HttpResponse::Created().json(SnapshotDto::from(&info)))
}

#[utoipa::path(get, path = "/v1/admin/snapshots", tag = "operations", security(("ManagementKey" = [])), responses((status = 200, description = "The snapshots on disk", body = Vec<SnapshotDto>)))]
async fn list_snapshots(
    _: Management,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let store = store(&state)?;
    let list = web::block(move || store.list())
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot list snapshots");
            ApiError::internal()
        })?;
    Ok(HttpResponse::Ok().json(list.iter().map(SnapshotDto::from).collect::<Vec<_>>()))
}
