"""GET /v1/models and /v1/models/{id}: the models served here, and the engine behind each."""

from __future__ import annotations

from fastapi import APIRouter, Request

from imagegate.errors import ModelNotFound
from imagegate.http import wire
from imagegate.http.deps import FlowDep, KeyDep

router = APIRouter(prefix="/v1/models", tags=["models"])


def _model(request: Request, model: str, flow: FlowDep) -> wire.ModelObject:
    capabilities = None
    try:
        route = flow.registry.first_route(model)
        name, description = route.engine.name, route.engine.describe()
        capabilities = route.capabilities.public()
    except ModelNotFound:  # every channel serving it is disabled
        name, description = "none", "no enabled channel serves this model right now"
    return wire.ModelObject(
        id=model,
        created=int(request.app.state.started_at),
        owned_by="imagegate",
        engine=name,
        engine_description=description,
        capabilities=capabilities,
    )


@router.get("", response_model=wire.ModelList, responses=wire.ERRORS)
async def list_models(request: Request, flow: FlowDep, _key: KeyDep) -> wire.ModelList:
    return wire.ModelList(data=[_model(request, m, flow) for m in flow.registry.models()])


@router.get("/{model_id}", response_model=wire.ModelObject, responses=wire.ERRORS)
async def retrieve_model(model_id: str, request: Request, flow: FlowDep, _key: KeyDep) -> wire.ModelObject:
    if model_id not in flow.registry.models():
        raise ModelNotFound(f"The model '{model_id}' does not exist.", param="model")
    return _model(request, model_id, flow)
