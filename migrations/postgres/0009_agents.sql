-- Agents: what a business configures once (instructions and greeting as templates, tools,
-- transfer targets, outcome schema, caps…), versioned: `config` is the validated JSON object of
-- the agent's call fields; every version is kept in agent_versions (a call names the one it
-- started with).
CREATE TABLE agents (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    config     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE agent_versions (
    agent_id   TEXT NOT NULL,
    version    BIGINT NOT NULL,
    name       TEXT NOT NULL,
    config     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (agent_id, version)
);
-- Phone numbers bound to agents: an inbound call to `e164` (on `provider`, or any when NULL)
-- is served by `agent_id`.
CREATE TABLE numbers (
    e164       TEXT PRIMARY KEY,
    agent_id   TEXT NOT NULL REFERENCES agents (id),
    provider   TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX numbers_agent ON numbers (agent_id);
-- The agent (and its version) a call was made from, and the variables its templates were
-- filled with (a JSON object of strings).
ALTER TABLE calls ADD COLUMN agent_id TEXT;
ALTER TABLE calls ADD COLUMN agent_version BIGINT;
ALTER TABLE calls ADD COLUMN variables TEXT;
CREATE INDEX calls_agent ON calls (agent_id, created_at) WHERE agent_id IS NOT NULL;
