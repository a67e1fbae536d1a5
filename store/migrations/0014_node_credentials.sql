-- Broker credentials of nodes registered through the HTTP API (bulk import): the password is
-- returned once to the caller; only its Mosquitto $7$ hash is kept, until the app layer writes
-- it into the broker's account registry (applied_at).
CREATE TABLE node_credentials (
    username   text PRIMARY KEY,
    farm_id    text NOT NULL,
    node_id    text NOT NULL,
    pw_hash    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    applied_at timestamptz
);
CREATE INDEX node_credentials_pending ON node_credentials (username) WHERE applied_at IS NULL;
