"""Reference implementation for `make bench`: the same core routes as the Chalice app,
written the usual way with FastAPI + SQLAlchemy 2.x (ORM) + SQLite.

Covered: POST/GET/PATCH one incident, GET list (status, source, limit), x-api-key,
dedup_key, history, ETag. Not covered (not needed for the benchmark): cursor paging
(next_cursor is always null), If-Match, Idempotency-Key, /health, events. Validation
errors keep FastAPI's own shape (422 {"detail": ...}) rather than the contract's 400.

Config: REF_API_KEYS (comma separated), REF_DATABASE_URL (default in-memory SQLite).
"""
import hmac
import os
from datetime import datetime, timezone
from typing import Annotated, Literal, Optional

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, StringConstraints, field_serializer
from sqlalchemy import ForeignKey, String, Text, create_engine, select
from sqlalchemy.orm import (DeclarativeBase, Mapped, Session, mapped_column,
                            relationship, sessionmaker)
from sqlalchemy.pool import StaticPool

DATABASE_URL = os.environ.get("REF_DATABASE_URL", "sqlite:///:memory:")
API_KEYS = [k.strip() for k in os.environ.get("REF_API_KEYS", "").split(",") if k.strip()]

Status = Literal["new", "in_progress", "resolved", "closed"]
Source = Literal["operator", "monitoring", "partner"]
TRANSITIONS = {
    "new": {"in_progress", "resolved", "closed"},
    "in_progress": {"resolved", "closed"},
    "resolved": {"in_progress", "closed"},
    "closed": set(),
}
OPEN = ("new", "in_progress")


def utcnow() -> datetime:
    # SQLite keeps no time zone: store naive UTC, millisecond precision.
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


# --- database -----------------------------------------------------------------------

engine_kwargs = {"connect_args": {"check_same_thread": False}} if DATABASE_URL.startswith("sqlite") else {}
if DATABASE_URL in ("sqlite://", "sqlite:///:memory:"):
    engine_kwargs["poolclass"] = StaticPool  # one shared connection, or each would see an empty DB
engine = create_engine(DATABASE_URL, **engine_kwargs)
SessionLocal = sessionmaker(bind=engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    dedup_key: Mapped[Optional[str]] = mapped_column(String(256), index=True)
    occurrences: Mapped[int] = mapped_column(default=1)
    version: Mapped[int] = mapped_column(default=1)
    history: Mapped[list["HistoryEntry"]] = relationship(
        back_populates="incident", order_by="HistoryEntry.id",
        cascade="all, delete-orphan", lazy="selectin")

    __mapper_args__ = {"version_id_col": version}  # bumped on every UPDATE; feeds the ETag


class HistoryEntry(Base):
    __tablename__ = "incident_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[Optional[str]] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(64), default="api")
    incident: Mapped[Incident] = relationship(back_populates="history")


Base.metadata.create_all(engine)


def get_db():
    with SessionLocal() as db:
        yield db


def require_api_key(x_api_key: Annotated[Optional[str], Header()] = None) -> None:
    given = (x_api_key or "").encode()
    if not any(hmac.compare_digest(given, k.encode()) for k in API_KEYS):
        raise HTTPException(status_code=401, detail="missing or wrong x-api-key")


DB = Annotated[Session, Depends(get_db)]

# --- schemas ------------------------------------------------------------------------


class IncidentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
    source: Source
    dedup_key: Optional[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = None


class IncidentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status
    note: Optional[Annotated[str, StringConstraints(max_length=1000)]] = None


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class HistoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    at: datetime
    status: Status
    note: Optional[str]
    by: str

    @field_serializer("at")
    def _at(self, v: datetime) -> str:
        return iso(v)


class IncidentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    description: str
    status: Status
    source: Source
    created_at: datetime
    updated_at: datetime
    dedup_key: Optional[str]
    occurrences: int
    history: list[HistoryOut]

    @field_serializer("created_at", "updated_at")
    def _ts(self, v: datetime) -> str:
        return iso(v)


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    next_cursor: Optional[str] = None


# --- routes -------------------------------------------------------------------------

app = FastAPI(title="Incident API (reference)", dependencies=[Depends(require_api_key)])


def etag(incident: Incident) -> str:
    return f'"{incident.id}-{incident.version}"'


def load(db: Session, incident_id: int) -> Incident:
    incident = db.get(Incident, incident_id)
    if incident is None:
        raise HTTPException(status_code=404, detail=f"incident #{incident_id} not found")
    return incident


@app.post("/incidents", status_code=201, response_model=IncidentOut)
def create_incident(body: IncidentCreate, db: DB, response: Response):
    if body.dedup_key is not None:
        existing = db.scalars(select(Incident).where(
            Incident.dedup_key == body.dedup_key, Incident.status.in_(OPEN))).first()
        if existing is not None:
            existing.occurrences += 1
            existing.updated_at = utcnow()
            db.commit()
            response.status_code = 200
            response.headers["ETag"] = etag(existing)
            return existing
    now = utcnow()
    incident = Incident(description=body.description, source=body.source, dedup_key=body.dedup_key,
                        created_at=now, updated_at=now,
                        history=[HistoryEntry(at=now, status="new", by="api")])
    db.add(incident)
    db.commit()
    response.headers["Location"] = f"/incidents/{incident.id}"
    response.headers["ETag"] = etag(incident)
    return incident


@app.get("/incidents", response_model=IncidentPage)
def list_incidents(db: DB, status: Optional[Status] = None, source: Optional[Source] = None,
                   limit: Annotated[int, Query(ge=1, le=100)] = 50):
    query = select(Incident).order_by(Incident.created_at.desc(), Incident.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Incident.status == status)
    if source is not None:
        query = query.where(Incident.source == source)
    return {"items": db.scalars(query).all(), "next_cursor": None}


@app.get("/incidents/{incident_id}", response_model=IncidentOut)
def get_incident(incident_id: Annotated[int, Path(gt=0)], db: DB, response: Response):
    incident = load(db, incident_id)
    response.headers["ETag"] = etag(incident)
    return incident


@app.patch("/incidents/{incident_id}", response_model=IncidentOut)
def patch_incident(incident_id: Annotated[int, Path(gt=0)], body: IncidentPatch, db: DB, response: Response):
    incident = load(db, incident_id)
    if body.status != incident.status:
        allowed = TRANSITIONS[incident.status]
        if body.status not in allowed:
            raise HTTPException(status_code=409, detail=(
                f"incident #{incident.id} is {incident.status}; allowed: "
                + (", ".join(sorted(allowed)) or "none (final)")))
        now = utcnow()
        incident.status = body.status
        incident.updated_at = now
        incident.history.append(HistoryEntry(at=now, status=body.status, note=body.note, by="api"))
        db.commit()
    response.headers["ETag"] = etag(incident)
    return incident
